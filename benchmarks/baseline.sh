#!/usr/bin/env bash
# The hand-written alternative tagmatrix is measured against: per cell,
# `docker build` then `docker run --rm` with the docker CLI, under xargs -P.
#   baseline.sh PARALLEL PROJECT REGISTRY CELLS_FILE OUT_DIR [IMAGE [COMMAND [INSTALL]]]
# CELLS_FILE: one "python variant load" per line. Logs and exit codes go to OUT_DIR.
# IMAGE (default bench-baseline) names the images it builds: IMAGE:python-variant-load.
# COMMAND (default "python -m pytest -q tests") is split on spaces, no shell in between.
# INSTALL: "project" for a library: after copying the checkout, `pip install --no-deps .`
# (the loop a library maintainer writes; the default copies the checkout in, no install).
set -uo pipefail
parallel=$1 project=$2 registry=$3 cells=$4 out=$5 image_name=${6:-bench-baseline}
test_command=${7:-python -m pytest -q tests}
install_step=""
if [ "${8:-}" = project ]; then
    install_step='RUN pip install --no-cache-dir --no-deps .\n'
fi
mkdir -p "$out"
run_cell() {
    local python=$1 variant=$2 load=$3
    local cell="$python-$variant-$load" image="$image_name:$python-$variant-$load" code=0
    {
        printf 'FROM %s/library/python:%s-%s\nWORKDIR /usr/src/app\nCOPY requirements.txt ./\nRUN pip install --no-cache-dir -r requirements.txt\nCOPY . .\n'"$install_step" \
            "$registry" "$python" "$variant" | docker build -q -t "$image" -f - "$project" \
            && docker run --rm -e "MATRIX_LOAD=$load" "$image" $test_command
    } >"$out/$cell.log" 2>&1 || code=$?
    echo "$cell $code" >>"$out/exit-codes"
}
export -f run_cell
export project registry out image_name test_command install_step
xargs -P "$parallel" -L 1 bash -c 'run_cell "$@"' _ <"$cells"
