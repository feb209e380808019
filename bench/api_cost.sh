#!/usr/bin/env bash
# Measures examples/benches/api_cost.rs at the commit before the API issue
# (default 9110b82) and at the working tree, two rounds each, alternating,
# and writes the comparison table between the api-cost markers of
# BENCHMARKS.md. Usage: bench/api_cost.sh [BASE_COMMIT]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-9110b82}
root=$PWD
out=$root/target/api-cost
rm -rf "$out"
mkdir -p "$out"

# The old tree gets the same benchmark, spelled with the old name of
# `around_each`, and the dev-dependencies it needs.
before=$(mktemp -d)/before
git worktree add --quiet --detach "$before" "$base"
trap 'git worktree remove --force "$before"' EXIT
mkdir -p "$before/examples/benches"
sed -e 's/\.around_each(/.middleware(/g' examples/benches/api_cost.rs \
    >"$before/examples/benches/api_cost.rs"
cat >>"$before/examples/Cargo.toml" <<'TOML'

[dev-dependencies]
bench-support.workspace = true
criterion.workspace = true

[[bench]]
name = "api_cost"
harness = false
TOML

run() { # TREE LABEL
    (cd "$1" && CARGO_TARGET_DIR="$root/target" CRITERION_HOME="$out/$2" \
        cargo bench --quiet -p examples --bench api_cost -- --noplot >"$out/$2.log" 2>&1)
}
for round in 1 2; do
    echo "==> round $round: $base"
    run "$before" "before-$round"
    echo "==> round $round: working tree ($(git rev-parse --short HEAD))"
    run "$root" "after-$round"
done

python3 - "$out" "$base" "$(git rev-parse --short HEAD)" <<'PY'
import json, pathlib, re, sys
out, base, head = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
def mean(label, bench):
    path = out / label / "api_cost" / bench / "new" / "estimates.json"
    return json.loads(path.read_text())["mean"]["point_estimate"]
benches = sorted(p.name for p in (out / "before-1" / "api_cost").iterdir() if p.is_dir() and p.name != "report")
rows = ["| chain | before (`%s`) | after (`%s`) | change |" % (base, head), "|---|---|---|---|"]
for bench in benches:
    # The better of two rounds each: noise on this shared machine only adds.
    b = min(mean("before-1", bench), mean("before-2", bench))
    a = min(mean("after-1", bench), mean("after-2", bench))
    rows.append(f"| `{bench}` | {b:.1f} ns | {a:.1f} ns | {100 * (a - b) / b:+.1f}% |")
table = "\n".join(rows)
doc = pathlib.Path("BENCHMARKS.md")
text = doc.read_text()
begin, end = "<!-- api-cost:begin -->", "<!-- api-cost:end -->"
block = f"{begin}\n{table}\n{end}"
if begin in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text += "\n" + block + "\n"
doc.write_text(text)
print(table)
PY
