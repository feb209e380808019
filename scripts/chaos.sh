#!/usr/bin/env bash
# The chaos run of the event bus on NATS JetStream, bigger than CI's: EVENTS
# events (50,000 by default) over three worker processes while nats-server
# is killed with SIGKILL and restarted on its store, and one worker is
# killed with SIGKILL. Prints the figures and writes them into SECURITY.md
# between its chaos markers.
#
# Usage: scripts/chaos.sh [EVENTS]     (needs nats-server; scripts/test.sh installs it)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-50000}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
MODULINK_CHAOS_EVENTS=$events cargo test --release -p chain-scaling --features nats --test nats \
    -- chaos_server_and_worker_killed_mid_run_lose_nothing --exact --nocapture 2>&1 | tee "$log"
line=$(grep '^chaos: ' "$log" | tail -1)
[ -n "$line" ] || { echo "the chaos test printed no figures" >&2; exit 1; }
row="- $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD), \`scripts/chaos.sh $events\`: ${line#chaos: }"
awk -v row="$row" '
    /<!-- chaos:start -->/ { print; print row; skip = 1; next }
    /<!-- chaos:end -->/ { skip = 0 }
    !skip { print }
' SECURITY.md >SECURITY.md.new
mv SECURITY.md.new SECURITY.md
echo "$row"
