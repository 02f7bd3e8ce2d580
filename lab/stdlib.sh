# shellcheck shell=bash disable=SC2154,SC2034  # sourced: lab/up sets and reads these variables
# lab/stdlib.sh: the stand-ins' standard library: extension modules borrowed
# from Debian, and the check that they import what the official images do.
# Sourced by lab/up (its settings, log, die and helpers); not run on its own.

# Extension modules the machine's CPython builds lack (compiled without gdbm)
# and the official images have, taken from Debian's build of the same minor
# (same ABI tag). Each is imported in the image before it is pushed: Python
# loads extensions with RTLD_NOW, so a missing symbol fails there.
#   MINOR SUITE PACKAGE MODULE
# Not 3.13's _gdbm: trixie's is built from 3.13.5 and calls
# _PyErr_SetLocaleString, which the machine's 3.13.0 does not export.
# Not 3.10 or 3.12: no Debian release ships those minors.
borrowable='3.11 bookworm libpython3.11-stdlib _dbm
3.11 bookworm python3-gdbm _gdbm
3.13 trixie libpython3.13-stdlib _dbm'

borrow_modules() {  # borrow_modules MINOR PREFIX: sets borrowed (files for lib-dynload)
    local minor=$1 prefix=$2 m suite package module dir found
    dir=$cache/dynload/$minor
    borrowed=()
    while read -r m suite package module; do
        [ "$m" = "$minor" ] || continue
        compgen -G "$prefix/lib/python$minor/lib-dynload/$module.*.so" >/dev/null && continue
        found=$(compgen -G "$dir/$module.*.so" || true)
        if [ -z "$found" ]; then
            fetch_debian_package "$suite" "$package"
            rm -rf "$dir.tmp"; mkdir -p "$dir" "$dir.tmp"
            dpkg-deb -x "$deb_file" "$dir.tmp"
            found=$(compgen -G "$dir.tmp/usr/lib/python$minor/lib-dynload/$module.*.so") \
                || die "$deb_file has no $module for $minor"
            mv "$found" "$dir/"; rm -rf "$dir.tmp"
            found=$(compgen -G "$dir/$module.*.so")
            log "python $minor: $module from Debian $suite ($(basename "$deb_file"))"
        fi
        borrowed+=("$found")
    done <<<"$borrowable"
}

# The dbm modules of slim-modules.txt that a stand-in lacks (see the README).
dbm_gaps() {  # dbm_gaps MINOR PREFIX
    local module f gaps=""
    [ -n "$2" ] || return 0  # Debian's python3: python3-gdbm is in its root filesystem
    for module in _dbm _gdbm; do
        compgen -G "$2/lib/python$1/lib-dynload/$module.*.so" >/dev/null && continue
        for f in "${borrowed[@]}"; do [[ $(basename "$f") == "$module".* ]] && continue 2; done
        gaps+="$module "
    done
    echo "${gaps% }"
}

# Runs in a stand-in: the pip version, then "MODULE: ERROR" for each module of
# the arguments that does not import; the dbm backends store and read a key.
probe='
import importlib, importlib.metadata, os, sys, tempfile
pip = importlib.metadata.version("pip")
print("pip", pip)
assert tuple(int(p) for p in pip.split(".")[:2]) >= (25, 1), "pip older than 25.1"
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        print(f"{name}: {exc}")
for name in ("dbm.gnu", "dbm.ndbm"):
    try:
        backend = importlib.import_module(name)
    except ImportError:
        continue
    path = os.path.join(tempfile.mkdtemp(), "db")
    with backend.open(path, "c") as db:
        db[b"key"] = b"value"
    with backend.open(path, "r") as db:
        assert db[b"key"] == b"value", name
import venv
'

check_standin() {  # check_standin IMAGE MINOR EXPECTED_GAPS
    local image=$1 minor=$2 expected=$3 out missing
    local -a modules
    mapfile -t modules < <(awk -v m="$minor" '!/^#/ && NF { for (i = 2; i <= NF; i++) if ($i == m) print $1 }' \
        "$here/slim-modules.txt")
    out=$(docker run --rm "$image" python -c "$probe" "${modules[@]}" 2>&1) \
        || die "the python $minor stand-in failed its check: $out"
    missing=$(sed -n 's/^\([A-Za-z0-9_]*\): .*/\1/p' <<<"$out" | LC_ALL=C sort | paste -sd ' ')
    [ "$missing" = "$expected" ] \
        || die "python $minor stand-in: modules missing: ${missing:-none}; expected: ${expected:-none}. $out"
    log "python $minor: $(head -n 1 <<<"$out"); imports ${#modules[@]} extension modules of the official image's, lacks ${expected:-none}"
}
