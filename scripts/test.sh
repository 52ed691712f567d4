#!/usr/bin/env bash
# Installs what is needed and runs every test (unit, property, golden, real-kernel, end-to-end).
# Needs root: kernel tests build their own network namespaces and remove them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast
