# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this
# lab/cluster.sh — what lab/cluster-up and lab/cluster-down share (sourced, not run).
#
# The lab cluster is a TEST FIXTURE: the lab's Swarm (manager: this machine's
# engine) plus worker nodes that are Docker-in-Docker containers named
# tagmatrix-lab-node-<N>, each with its own dockerd and image store.
#
# Environment:
#   TAGMATRIX_LAB_CACHE   cache folder (default lab/.cache, shared with lab/up)
#   LAB_NODES             number of worker nodes (default 2)
#   LAB_NODE_CPUS         CPU limit of each node (default 0.75: two nodes leave
#                         this 2-core machine half a core for the manager)
#   LAB_NODE_MEMORY       memory limit of each node (default 4g)
#   LAB_NODE_PARALLEL     cells each node runs at once, as the node label
#                         org.tagmatrix.parallel (default 1)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${TAGMATRIX_LAB_CACHE:-$here/.cache}
registry=127.0.0.1:5000
node_prefix=tagmatrix-lab-node
node_label=org.tagmatrix.lab=node
node_image=tagmatrix-lab/node:bookworm
forwarder_pid=$cache/registry-forwarder.pid
mkdir -p "$cache"

log() { printf '[lab-cluster] %s\n' "$*" >&2; }

listener_pid() {  # listener_pid ADDRESS PORT: the pid listening there, empty if none
    command -v ss >/dev/null || return 0
    ss -ltnpH "sport = :$2" 2>/dev/null | grep -F " $1:$2 " \
        | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1
}

registry_storage() {  # registry_storage PID: the rootdirectory of a `docker-registry serve CONFIG`
    local config
    config=$(tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | sed -n '3p') || return 0
    [ -n "$config" ] && [ -r "$config" ] || return 0
    sed -n 's/^ *rootdirectory: *//p' "$config" | head -n 1
}

# The storage of the registry that answers on 127.0.0.1:5000: the one lab/up started,
# maybe from another checkout (another cache) than this script's.
lab_registry_storage() {
    local pid found=""
    pid=$(listener_pid 127.0.0.1 5000)
    [ -n "$pid" ] && found=$(registry_storage "$pid")
    printf '%s\n' "${found:-$cache/registry}"
}
die() { printf '[lab-cluster] error: %s\n' "$*" >&2; exit 1; }

apt_install() {
    [ "$(id -u)" = 0 ] || die "need root to install $* (apt-get)"
    log "installing $* with apt-get"
    if [ ! -f "$cache/.apt-updated" ]; then
        apt-get update -q -o Acquire::Retries=5 >"$cache/apt.log" 2>&1 || die "apt-get update failed: see $cache/apt.log"
        touch "$cache/.apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Acquire::Retries=5 --no-install-recommends "$@" \
        >>"$cache/apt.log" 2>&1 || die "apt-get install $* failed: see $cache/apt.log"
}

wait_for() {  # wait_for SECONDS COMMAND...: true once COMMAND succeeds, false after SECONDS
    local limit=$1 waited=0; shift
    until "$@" >/dev/null 2>&1; do
        [ "$waited" -ge "$((limit * 4))" ] && return 1
        sleep 0.25; waited=$((waited + 1))
    done
}

# The host's address on the engine's default bridge: every container on this
# machine reaches it (172.17.0.1 here).
bridge_gateway() {
    docker network inspect bridge --format '{{(index .IPAM.Config 0).Gateway}}' 2>/dev/null \
        || die "cannot read the gateway of the engine's bridge network (docker network inspect bridge)"
}

# The worker containers that exist, whatever LAB_NODES says now.
node_containers() {
    docker ps -a --filter "label=$node_label" --filter "name=^$node_prefix-" --format '{{.Names}}' | sort
}

# The manager's node ids of lab worker nodes (by hostname), one per line.
swarm_lab_nodes() {
    docker node ls --format '{{.ID}} {{.Hostname}}' 2>/dev/null \
        | awk -v p="$node_prefix-" 'index($2, p) == 1 {print $1}'
}
