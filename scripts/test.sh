#!/usr/bin/env bash
# The whole test suite, set-up included: formatting and lints, Rust unit and integration tests, the
# Python package built into .venv, then the Python tests (PIL pixels, numpy statistics, bad input,
# SIGKILL atomicity, the package against numpy, DDP) against the release binary and the package.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test
cargo build --release --bins
VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --release --quiet -m python/Cargo.toml
.venv/bin/python -m pytest -q tests/python "$@"
