#!/usr/bin/env bash
# One command for the side-by-side benchmark: set-up (project venv, peers venv with torch,
# torchvision, DALI, FFCV where it installs), the release build and the Python package, then
# benches/compare.py, which writes BENCHMARKS.md and benchmarks.png. Options go to compare.py.
set -euo pipefail
cd "$(dirname "$0")/.."
benches/setup_peers.sh
cargo build --release --bins
VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --release --quiet -m python/Cargo.toml
# The package built just above lives in python/alexpipe (abi3): the peers venv imports it from there.
PYTHONPATH="$PWD/python" exec target/peers-venv/bin/python benches/compare.py "$@"
