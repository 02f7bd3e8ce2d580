# shellcheck shell=bash disable=SC2154,SC2034  # sourced: lab/up sets and reads these variables
# lab/index.sh: the package index mirror, proxpi on the Docker bridge gateway.
# Sourced by lab/up (its settings, log, die and helpers); not run on its own.
# Containers reach the host only on the bridge gateway; nothing listens on a
# public address.

# (grep without -q after a pipe: with pipefail, a writer cut short by SIGPIPE fails.)
index_answers() { curl -fsS -m 2 "http://$index_host/health" 2>/dev/null | grep success >/dev/null; }

runs_from_index_venv() {  # runs_from_index_venv PID: whether PID is one of our gunicorns
    { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null | grep -F "$index_venv/" >/dev/null
}

index_pid() {  # the pid of our gunicorn master (from its pid file) if it still runs
    local pid
    pid=$(cat "$cache/index.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && runs_from_index_venv "$pid" && echo "$pid"
}

index_port_taken() { [ -n "$(index_listeners)" ]; }

index_listeners() {  # "ADDRESS PROCESS" of whatever listens on the index port
    ss -Hltnp "sport = :$index_port" 2>/dev/null | awk '{ print $4, $NF }'
}

listener_pids() { grep -o 'pid=[0-9]*' <<<"$1" | cut -d= -f2 | sort -u | paste -sd ' '; }

ours_listening() {  # ours_listening LISTENERS: whether all of them are our gunicorns
    local pid pids
    pids=$(listener_pids "$1")
    [ -n "$pids" ] || return 1
    for pid in $pids; do runs_from_index_venv "$pid" || return 1; done
}

index_stamp() {  # what the running mirror was made from: its pins and its app
    cat "$here/index-requirements.txt" "$here/index_app.py" | sha256sum | cut -c1-12
}

install_index() {
    local pid
    if pid=$(index_pid); then  # ours (pid file and command line), never another process
        log "stopping the index mirror (pid $pid): its requirements or lab/index_app.py changed"
        kill "$pid"
        wait_while 30 kill -0 "$pid" || die "the index mirror (pid $pid) did not stop within 30 s"
    fi
    log "installing the index mirror (lab/index-requirements.txt) into $index_venv"
    rm -rf "$index_venv"
    { python3 -m venv "$index_venv" \
        && "$index_venv/bin/python" -m pip install -q --disable-pip-version-check --require-hashes \
            -r "$here/index-requirements.txt"; } >"$cache/index-install.log" 2>&1 \
        || die "installing the index mirror failed: see $cache/index-install.log"
    touch "$index_venv/.lab-$(index_stamp)"
}

ensure_index() {
    local gateway listeners
    gateway=$(docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}' 2>/dev/null) || true
    [ -n "$gateway" ] || die "cannot read the gateway of Docker's bridge network (docker network inspect bridge)"
    ip -4 -o addr show | grep -F " $gateway/" >/dev/null \
        || die "the Docker bridge gateway $gateway is not an address of this machine (a remote engine?): the package index mirror must run on the engine's host"
    index_host=$gateway:$index_port
    index_url=http://$index_host/index/
    [ -f "$index_venv/.lab-$(index_stamp)" ] || install_index
    listeners=$(index_listeners)
    if [ -n "$listeners" ] && ! index_pid >/dev/null && ours_listening "$listeners"; then
        # A killed gunicorn master leaves its worker serving for about a second.
        log "index mirror: its gunicorn master is gone; waiting for the orphaned worker to exit"
        wait_while 30 index_port_taken \
            || die "the orphaned index mirror worker still listens: $(index_listeners)"
        listeners=""
    fi
    local address users at=""
    while read -r address users; do
        [ -n "$address" ] || continue
        if [ "$address" = "$index_host" ]; then
            at=$users
        elif [[ $address == 0.0.0.0:* || $address == \*:* || $address == \[::\]:* ]]; then
            die "port $index_port is bound on every address ($address, $users), so it also answers outside the Docker bridge; the lab's index mirror listens on $index_host only. Stop that process, or pick another port with LAB_INDEX_PORT"
        elif ours_listening "$users"; then
            die "the lab's index mirror (pid $(listener_pids "$users")) listens on $address, not on the Docker bridge gateway $index_host (did the gateway change?). Stop it (kill $(index_pid || listener_pids "$users")) and run lab/up again"
        fi
    done <<<"$listeners"
    if [ -n "$at" ]; then
        wait_for 30 "index mirror" index_answers \
            || die "something listens on $index_host but does not answer as the index mirror (/health): $at"
        log "index mirror: $index_url (running, pid $(index_pid || echo "$(listener_pids "$at"), not started by lab/up"))"
        return
    fi
    if index_pid >/dev/null; then
        die "the index mirror (pid $(index_pid)) runs but does not listen on $index_host; see $cache/index.log"
    fi
    # gunicorn refuses a pid file whose pid still exists, and a killed master
    # can linger as a zombie for a moment: ours is not running, so it is stale.
    rm -f "$cache/index.pid"
    mkdir -p "$cache/pypi"
    log "starting the index mirror on $index_host (proxpi; cache $cache/pypi; log $cache/index.log)"
    # PROXPI_DOWNLOAD_TIMEOUT: on a cache miss proxpi waits this long for its own
    # download and otherwise redirects pip to files.pythonhosted.org, which
    # containers cannot reach. One worker with threads: proxpi keeps its index
    # cache in memory, per process. index_app wraps proxpi so that a download
    # that fails anyway is fetched by the host, never redirected (see its
    # docstring). setsid: outlive this script (see dockerd).
    setsid nohup env PROXPI_CACHE_DIR="$cache/pypi" PROXPI_DOWNLOAD_TIMEOUT=900 \
        REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
        "$index_venv/bin/gunicorn" --bind "$index_host" --workers 1 --threads 8 --pythonpath "$here" \
        --pid "$cache/index.pid" --access-logfile - --access-logformat '%(h)s "%(r)s" %(s)s %(M)sms' \
        --error-logfile - index_app:app \
        >>"$cache/index.log" 2>&1 </dev/null &
    wait_for 60 "index mirror" index_answers \
        || die "the index mirror did not answer on $index_host: $(tail -n 5 "$cache/index.log")"
    log "index mirror: $index_url (pid $(index_pid || echo ?))"
}
