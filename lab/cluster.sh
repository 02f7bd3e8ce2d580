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
die() { printf '[lab-cluster] error: %s\n' "$*" >&2; exit 1; }

apt_install() {
    [ "$(id -u)" = 0 ] || die "need root to install $* (apt-get)"
    log "installing $* with apt-get"
    if [ ! -f "$cache/.apt-updated" ]; then
        apt-get update -q >"$cache/apt.log" 2>&1 || die "apt-get update failed: see $cache/apt.log"
        touch "$cache/.apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
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
