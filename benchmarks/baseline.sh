#!/usr/bin/env bash
# The hand-written alternative tagmatrix is measured against: per cell,
# `docker build` then `docker run --rm` with the docker CLI, under xargs -P.
#   baseline.sh PARALLEL PROJECT REGISTRY CELLS_FILE OUT_DIR [IMAGE [COMMAND [INSTALL]]]
# CELLS_FILE: one "python variant load" per line. Logs and exit codes go to OUT_DIR.
# IMAGE (default bench-baseline) names the images it builds: IMAGE:python-variant-load.
# COMMAND (default "python -m pytest -q tests") is split on spaces, no shell in between.
# INSTALL: "project" for a library: after copying the checkout, `pip install --no-deps .`
# (the loop a library maintainer writes; the default copies the checkout in, no install).
# It writes PROJECT/.bench-baseline.Dockerfile and lists it in PROJECT/.dockerignore.
set -uo pipefail
parallel=$1 project=$2 registry=$3 cells=$4 out=$5 image_name=${6:-bench-baseline}
test_command=${7:-python -m pytest -q tests}
mkdir -p "$out"
# The Dockerfile lives in the project, as a user's does, and is listed in its
# .dockerignore: a Dockerfile on stdin or outside the context makes the classic builder
# miss the cache of every `COPY . .` (the CLI adds it to the context under a random name).
dockerfile=.bench-baseline.Dockerfile
{
    printf 'ARG BASE\nFROM $BASE\nWORKDIR /usr/src/app\nCOPY requirements.txt ./\n'
    printf 'RUN pip install --no-cache-dir -r requirements.txt\nCOPY . .\n'
    if [ "${8:-}" = project ]; then printf 'RUN pip install --no-cache-dir --no-deps .\n'; fi
} >"$project/$dockerfile"
grep -qxF "$dockerfile" "$project/.dockerignore" 2>/dev/null \
    || printf '%s\n' "$dockerfile" >>"$project/.dockerignore"
run_cell() {
    local python=$1 variant=$2 load=$3
    local cell="$python-$variant-$load" image="$image_name:$python-$variant-$load" code=0
    {
        docker build -q -t "$image" -f "$project/$dockerfile" \
            --build-arg "BASE=$registry/library/python:$python-$variant" "$project" \
            && docker run --rm -e "MATRIX_LOAD=$load" "$image" $test_command
    } >"$out/$cell.log" 2>&1 || code=$?
    echo "$cell $code" >>"$out/exit-codes"
}
export -f run_cell
export project registry out image_name test_command dockerfile
xargs -P "$parallel" -L 1 bash -c 'run_cell "$@"' _ <"$cells"
