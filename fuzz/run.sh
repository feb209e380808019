#!/usr/bin/env bash
# Fuzzes one target with AFL++ (cargo-afl, stable Rust) for MINUTES, then
# minimizes what it found into fuzz/corpus/TARGET, copies any crash to
# fuzz/crashes/TARGET for triage, and records the run's figures in
# fuzz/results/TARGET.tsv (read by fuzz/report.sh into SECURITY.md).
#
# Usage: fuzz/run.sh TARGET [MINUTES]     (30 minutes by default)
# Targets: jwt_verify fernet_decrypt validators sanitize validate_input context_json
# Needs: cargo install cargo-afl (builds AFL++ with the system's C compiler).
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET [MINUTES]}
minutes=${2:-30}
command -v cargo-afl >/dev/null || cargo install cargo-afl

(cd afl && cargo afl build --release --bin "$target")
binary=afl/target/release/$target

# Start from the seeds and the corpus kept from earlier runs.
input=$(mktemp -d)
trap 'rm -rf "$input"' EXIT
cp seeds/"$target"/* "$input"/
if [ -d corpus/"$target" ]; then cp corpus/"$target"/* "$input"/ 2>/dev/null || true; fi

out=out/$target
rm -rf "$out"
mkdir -p out
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
cargo afl fuzz -V $((minutes * 60)) -i "$input" -o "$out" "$binary" >"$out.log" 2>&1 || {
    tail -30 "$out.log" >&2
    exit 1
}

stat() { grep "^$1 " "$out/default/fuzzer_stats" | sed 's/.*: //'; }

# Keep the smallest set of inputs with the same coverage.
# afl-cmin does not see the coverage of afl.rs's persistent-mode binaries
# here (it reports no tuples and keeps nothing), so when it keeps nothing
# the whole queue (already one entry per new path) is kept instead. Files
# are named by their content's hash, so reruns do not duplicate them.
rm -rf corpus/"$target".new
cargo afl cmin -i "$out/default/queue" -o corpus/"$target".new -- "$binary" >"$out.cmin.log" 2>&1 || true
source_dir=corpus/"$target".new
if [ -z "$(ls -A "$source_dir" 2>/dev/null)" ]; then
    echo "afl-cmin kept nothing (see $out.cmin.log); keeping the whole queue" >&2
    source_dir=$out/default/queue
fi
rm -rf corpus/"$target"
mkdir -p corpus/"$target"
find "$source_dir" -maxdepth 1 -type f | while read -r file; do
    cp "$file" corpus/"$target"/"$(sha1sum "$file" | cut -c1-16)"
done
rm -rf corpus/"$target".new

crashes=$(find "$out/default/crashes" -type f -name 'id:*' | wc -l)
if [ "$crashes" -gt 0 ]; then
    mkdir -p crashes/"$target"
    cp "$out"/default/crashes/id:* crashes/"$target"/
fi

mkdir -p results
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$target" "$(date -u +%Y-%m-%d)" "$(git rev-parse --short HEAD)" \
    "$(stat run_time)" "$(stat execs_done)" "$(stat execs_per_sec)" \
    "$(stat bitmap_cvg)" "$(stat corpus_count)" "$(ls corpus/"$target" | wc -l)" \
    "$crashes" >results/"$target".tsv
echo "$target: $(cat results/"$target".tsv)"
