#!/usr/bin/env bash
# Measures everything BENCHMARKS.md reports and rewrites its tables and the
# curves in bench/plots/ from what was measured (bench/report.py): every
# criterion benchmark of the workspace, modulink-py side by side with
# chain-core, the ten-million-item stream, the API comparison at the commit
# before the API changes (bench/api_cost.sh writes its own table), and the
# router against nginx.
# About an hour on the project's 2-core machine; run it on an idle machine.
#
# Usage: bench/report.sh [--quick]
#   --quick  shorter router rounds (3 s, 3 rounds) for a trial run
#
# Installs what it needs when missing: gnuplot (Debian), modulink-py (PyPI,
# into a venv under target/), wrk and nginx (Debian), nats-server (Debian;
# the NATS benchmark starts its own).
set -euo pipefail
cd "$(dirname "$0")/.."
router_seconds=10
router_rounds=7
if [ "${1:-}" = "--quick" ]; then
    router_seconds=3
    router_rounds=3
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
for package in gnuplot:gnuplot-nox nats-server:nats-server time:time; do
    tool=${package%%:*}
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/bin/$tool" ]; then
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
            "${package#*:}"
    fi
done

out=target/bench-report
mkdir -p "$out"

echo "==> every criterion benchmark (cargo bench --workspace --all-features --bench '*')"
echo "    (output in $out/cargo-bench.log)"
if ! cargo bench --workspace --all-features --bench '*' -- --noplot >"$out/cargo-bench.log" 2>&1; then
    # A benchmark that failed must not leave last run's figures in the report.
    tail -40 "$out/cargo-bench.log" >&2
    echo "cargo bench failed; see $out/cargo-bench.log" >&2
    exit 1
fi

echo "==> modulink-py 4.0.3"
bench/compare_modulink_py.sh --python-only

echo "==> ten million items through a stream"
cargo build --release --quiet -p examples --example streaming-10m
/usr/bin/time -v target/release/examples/streaming-10m >"$out/streaming.log" 2>&1
python3 - "$out/streaming.log" >"$out/streaming.json" <<'PY'
import json, re, sys
log = open(sys.argv[1]).read()
def find(pattern, cast=float):
    match = re.search(pattern, log)
    return cast(match.group(1)) if match else None
items = re.search(r"(\d+) items in ([\d.]+) s: (\d+) items/s", log)
if items is None:
    sys.exit("streaming-10m printed no throughput:\n" + log)
json.dump({
    "items": int(items.group(1)),
    "seconds": float(items.group(2)),
    "items_per_second": float(items.group(3)),
    "throttled": find(r"throttled (\d+) times", int),
    "kernel_peak_mb": find(r"kernel high-water mark\): ([\d.]+) MB"),
    "max_rss_kb": find(r"Maximum resident set size \(kbytes\): (\d+)", int),
}, sys.stdout)
PY

echo "==> the API changes, before and after (bench/api_cost.sh)"
bench/api_cost.sh

echo "==> throughput against worker processes, one server and a cluster (bench/workers.sh)"
bench/workers.sh

echo "==> the router against nginx ($router_rounds rounds of $router_seconds s)"
bench/router_vs_nginx.sh "$router_seconds" "$router_rounds"

echo "==> BENCHMARKS.md and bench/plots/"
python3 bench/report.py
