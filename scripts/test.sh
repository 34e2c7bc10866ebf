#!/usr/bin/env bash
# The whole test suite, set-up included: formatting and lints, Rust unit and integration tests,
# then the Python oracle tests (PIL pixels, numpy statistics, bad input, atomicity) against the
# release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test
cargo build --release --bins
.venv/bin/python -m pytest -q tests/python "$@"
