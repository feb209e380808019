#!/usr/bin/env bash
# Writes the fuzzing table of SECURITY.md from fuzz/results/*.tsv (one line
# per target, written by fuzz/run.sh), between its fuzz-table markers.
set -euo pipefail
cd "$(dirname "$0")"
table=$(mktemp)
{
    echo "| target | date | commit | time | executions | execs/s | bitmap coverage | queue | corpus kept | crashes |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for file in results/*.tsv; do
        target=$(basename "$file" .tsv)
        # The corpus as it is now (later runs and fixes may have changed it).
        kept=$(find corpus/"$target" -type f | wc -l)
        awk -F'\t' -v kept="$kept" '{ printf "| `%s` | %s | %s | %d min | %\047d | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4 / 60, $5, $6, $7, $8, kept, $10 }' "$file"
    done
} >"$table"
awk -v table="$table" '
    /<!-- fuzz-table:start -->/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
    /<!-- fuzz-table:end -->/ { skip = 0 }
    !skip { print }
' ../SECURITY.md >../SECURITY.md.new
mv ../SECURITY.md.new ../SECURITY.md
rm -f "$table"
