#!/usr/bin/env bash
# Runs the same 10-link insert chain on modulink-py 4.0.3 and on chain-core,
# one after the other, and prints both timings and the ratio.
# Usage: bench/compare_modulink_py.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/modulink-py-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet modulink-py==4.0.3
fi

py_async=$("$venv/bin/python" bench/modulink_py_chain.py async)
py_sync=$("$venv/bin/python" bench/modulink_py_chain.py sync)

cargo bench -p chain-core --bench chain_overhead -- 'context_10_inserts/chain' >/dev/null
median() {
    python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['median']['point_estimate'])" \
        "target/criterion/context_10_inserts/$1/new/estimates.json"
}
rust_async=$(median chain)
rust_fused=$(median chain_fused_links)
rust_sync=$(median chain_sync_links)

python3 - "$py_async" "$rust_async" "$rust_fused" "$py_sync" "$rust_sync" <<'PY'
import sys
py_async, rust_async, rust_fused, py_sync, rust_sync = map(float, sys.argv[1:])
for kind, py, rs in (
    ("async links", py_async, rust_async),
    ("async links, fused", py_async, rust_fused),
    ("sync links", py_sync, rust_sync),
):
    print(f"{kind}: modulink-py 4.0.3 {py:7.0f} ns, chain-core {rs:5.0f} ns per 10-link run: "
          f"{py / rs:.0f}x faster")
PY
