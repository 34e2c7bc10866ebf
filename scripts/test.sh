#!/usr/bin/env bash
# The whole test suite, set-up included: formatting and lints, Rust unit and integration tests, the
# Python package built into .venv, then the Python tests (PIL pixels, numpy statistics, bad input,
# SIGKILL atomicity, the package against numpy, DDP, HDF5 against h5py, the trainer learning
# Fashion-MNIST) against the release binaries and the package. Everything is built with the `hdf5`
# feature (libhdf5-dev from setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
# With the HDF5 feature (what the tests below use), and the library without it (it must not need libhdf5).
cargo clippy --workspace --all-targets --features alexpipe/hdf5,alexpipe-python/hdf5 -- -D warnings
cargo clippy -p alexpipe --all-targets -- -D warnings
# Release: one optimised build serves the Rust tests, the binaries the Python tests run and the
# trainer (libtorch-linked code is slow to build; a second, debug build would double CI time).
cargo test --release --features alexpipe/hdf5
cargo build --release --bins --features alexpipe/hdf5
VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --release --quiet -m python/Cargo.toml --features hdf5
.venv/bin/python -m pytest -q tests/python "$@"
