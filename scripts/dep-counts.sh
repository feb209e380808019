#!/usr/bin/env bash
# Counts the crates (the crate itself included) a build of chain-security
# compiles, with no features, each feature alone and the default set: the
# figures of chain-security/README.md. Usage: scripts/dep-counts.sh
set -euo pipefail
cd "$(dirname "$0")/.."
count() {
    cargo tree -q -p chain-security "$@" -e normal --prefix none |
        sed 's/ (\*)//' | sort -u | wc -l
}
echo "| build | crates |"
echo "|---|---|"
echo "| no features | $(count --no-default-features) |"
for feature in auth validation sanitize secrets aws; do
    echo "| \`$feature\` alone | $(count --no-default-features --features "$feature") |"
done
echo "| default (\`auth\`, \`validation\`, \`secrets\`) | $(count) |"
echo "| every feature | $(count --all-features) |"
