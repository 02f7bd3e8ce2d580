# shellcheck shell=bash disable=SC2154,SC2034  # sourced: lab/up sets and reads these variables
# lab/debian.sh: the Debian mirror of the machine's apt sources, and apt-get on a
# package list of its own per suite.
# Sourced by lab/up (its settings, log, die and helpers); not run on its own.

# One-line format: "deb [options] URI SUITE COMPONENT...".
# shellcheck disable=SC2016  # awk programs: awk expands these $ fields
one_line_awk='
    { sub(/#.*/, "") }
    $1 != "deb" { next }
    {
        i = 2
        if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
        main = 0
        for (j = i + 2; j <= NF; j++) if ($j == "main") main = 1
        if (main && i + 1 <= NF) print $i, $(i + 1)
    }'
# deb822 format: stanzas of Types/URIs/Suites/Components (and Enabled) fields.
# shellcheck disable=SC2016
deb822_awk='
    function norm(s) { gsub(/[ \t]+/, " ", s); sub(/^ /, "", s); sub(/ $/, "", s); return s }
    function flush(   n, k, u) {
        if ((" " norm(f["types"]) " ") ~ / deb / && tolower(norm(f["enabled"])) != "no" \
            && (" " norm(f["components"]) " ") ~ / main /) {
            n = split(norm(f["uris"]), u, " ")
            for (k = 1; k <= n; k++) print u[k], norm(f["suites"])
        }
        split("", f); key = ""
    }
    /^#/ { next }
    /^[ \t]*$/ { flush(); next }
    /^[ \t]/ { if (key != "") f[key] = f[key] " " $0; next }
    index($0, ":") > 1 { key = tolower(substr($0, 1, index($0, ":") - 1)); f[key] = substr($0, index($0, ":") + 1) }
    END { flush() }'

# "URI SUITE..." for each `deb` entry with the component main, in apt's order:
# sources.list, then sources.list.d/*.list and *.sources sorted by name.
# LAB_APT_DIR (default /etc/apt) exists to try this on other source files.
apt_deb_entries() {
    local etc=${LAB_APT_DIR:-/etc/apt} f
    if [ -f "$etc/sources.list" ]; then awk "$one_line_awk" "$etc/sources.list"; fi
    [ -d "$etc/sources.list.d" ] || return 0
    while IFS= read -r f; do
        case $f in
            *.sources) awk "$deb822_awk" "$f" ;;
            *) awk "$one_line_awk" "$f" ;;
        esac
    done < <(find "$etc/sources.list.d" -maxdepth 1 -type f \( -name '*.list' -o -name '*.sources' \) | LC_ALL=C sort)
}

# Whether URI serves SUITE from Debian's main archive: its Release file says so.
serves_suite() {  # serves_suite URI SUITE
    local release
    release=$(curl -fsS -m 15 -r 0-4095 "${1%/}/dists/$2/Release" 2>/dev/null) || return 1
    grep -qx 'Origin: Debian' <<<"$release" && grep -Eqx "(Suite|Codename): $2" <<<"$release"
}

# The mirror for SUITE, chosen once per run: LAB_DEBIAN_MIRROR; else the first
# `deb` URI of the machine's apt sources that serves SUITE (entries naming
# SUITE first, then those of another release's main archive; -security,
# -updates and -backports archives do not serve it); else deb.debian.org.
declare -A debian_mirrors=()
choose_debian_mirror() {  # choose_debian_mirror SUITE: sets debian_mirrors[SUITE]
    local suite=$1 uri suites
    [ -z "${debian_mirrors[$suite]:-}" ] || return 0
    if [ -n "${LAB_DEBIAN_MIRROR:-}" ]; then
        debian_mirrors[$suite]=$LAB_DEBIAN_MIRROR
        log "debian mirror for $suite: $LAB_DEBIAN_MIRROR (LAB_DEBIAN_MIRROR)"
        return
    fi
    local -a naming=() others=()
    while read -r uri suites; do
        case $uri in http://*|https://*|file:/*) ;; *) continue ;; esac  # what debootstrap fetches
        if [[ " $suites " == *" $suite "* ]]; then naming+=("$uri")
        elif [[ " $suites " =~ \ [a-z]+\  ]]; then others+=("$uri")
        fi
    done < <(apt_deb_entries)
    for uri in "${naming[@]}" "${others[@]}"; do
        if serves_suite "$uri" "$suite"; then
            debian_mirrors[$suite]=${uri%/}
            log "debian mirror for $suite: ${uri%/} (the machine's apt sources)"
            return
        fi
    done
    debian_mirrors[$suite]=http://deb.debian.org/debian
    log "debian mirror for $suite: http://deb.debian.org/debian (no apt source of this machine serves $suite)"
}

# apt-get on a package list of its own for one Debian suite (not the machine's).
debian_apt() {  # debian_apt SUITE APT-GET-ARGS...
    local root=$cache/apt-$1; shift
    apt-get -q -o Acquire::Retries=5 -o Dir::Etc::SourceList="$root/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
        -o Dir::State::Lists="$root/lists" -o Dir::Cache="$root/cache" \
        -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o APT::Sandbox::User=root "$@"
}

fetch_debian_package() {  # fetch_debian_package SUITE PACKAGE: sets deb_file
    local suite=$1 package=$2 root=$cache/apt-$1
    if [ ! -f "$root/.updated" ]; then
        choose_debian_mirror "$suite"
        mkdir -p "$root/lists/partial" "$root/cache/archives/partial" "$root/debs"
        echo "deb ${debian_mirrors[$suite]} $suite main" >"$root/sources.list"
        debian_apt "$suite" update >>"$cache/apt.log" 2>&1 \
            || die "apt-get update for Debian $suite failed: see $cache/apt.log"
        touch "$root/.updated"
    fi
    rm -f "$root/debs/${package}_"*.deb
    (cd "$root/debs" && debian_apt "$suite" download "$package") >>"$cache/apt.log" 2>&1 \
        || die "apt-get download $package ($suite) failed: see $cache/apt.log"
    deb_file=$(ls "$root/debs/${package}_"*.deb)
}
