#!/usr/bin/env bash
# Runs the same 10-link insert chain on modulink-py 4.0.3 and on chain-core,
# one after the other, and writes the comparison table of BENCHMARKS.md.
# Usage: bench/compare_modulink_py.sh [--python-only]
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/modulink-py-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet modulink-py==4.0.3
fi

py_async=$("$venv/bin/python" bench/modulink_py_chain.py async)
py_sync=$("$venv/bin/python" bench/modulink_py_chain.py sync)
mkdir -p target/bench-report
printf '{"version": "4.0.3", "async_ns": %s, "sync_ns": %s}\n' "$py_async" "$py_sync" \
    >target/bench-report/modulink_py.json
echo "modulink-py 4.0.3: $py_async ns (async links), $py_sync ns (sync links) per 10-link run"

# `bench/report.sh` measures the Rust side with every other benchmark.
if [ "${1:-}" != "--python-only" ]; then
    cargo bench -p chain-core --bench chain_overhead -- 'context_10_inserts/chain' >/dev/null
    python3 bench/report.py --only modulink-py
fi
