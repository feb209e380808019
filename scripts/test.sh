#!/usr/bin/env bash
# Runs everything CI runs: formatting, lints and the whole test suite.
# It installs and starts what the tests need when it is missing, so it works
# on a fresh machine. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Services the tests need are added here as the crates that use them land
# (a nats-server for the event bus, promtool for the metrics endpoint), each
# installed from Debian's packages only when missing.

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps

echo "==> chain-core without default features"
cargo check -p chain-core --no-default-features

echo "==> cargo test"
cargo test --workspace --all-features
