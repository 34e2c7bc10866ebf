#!/usr/bin/env bash
# The whole test suite, set-up included: formatting and lints, Rust unit and integration tests, the
# Python package built into .venv, then the Python tests (PIL pixels, numpy statistics, bad input,
# SIGKILL atomicity, the package against numpy, DDP, HDF5 against h5py, the trainer learning
# Fashion-MNIST) against the release binaries and the package; then a smoke run of every benchmark
# (the same work on a tiny corpus, seconds each) and the main job on the fixtures (`demo.sh --quick`),
# so a broken benchmark or demo fails CI. Everything is built with the `hdf5` feature (libhdf5-dev
# from setup.sh). Under CI=true, tests whose precondition is missing (torch, a high enough open-file
# limit) fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
# With the HDF5 feature (what the tests below use), and the library without it (it must not need libhdf5).
# In the release profile, like everything below: the C and C++ that build scripts compile (libjpeg-turbo,
# the libtorch shim, zstd, ring) is then built once for the whole run, not once per profile.
cargo clippy --release --workspace --all-targets --features alexpipe/hdf5,alexpipe-python/hdf5 -- -D warnings
cargo clippy --release -p alexpipe --all-targets -- -D warnings
# Every public item documented (#![deny(missing_docs)]) and the docs build without a warning.
RUSTDOCFLAGS="-D warnings" cargo doc --release --no-deps --workspace --features alexpipe/hdf5,alexpipe-python/hdf5
# Release: one optimised build serves the Rust tests, the binaries the Python tests run and the
# trainer (libtorch-linked code is slow to build; a second, debug build would double CI time). The
# integration tests are three binaries (tests/integration.rs, tests/process.rs,
# train/tests/integration.rs), and `cargo test` builds the binaries with the same features as
# `cargo build` (Cargo.toml's bitflags line), so the build below only confirms they are there.
cargo test --release --features alexpipe/hdf5
cargo build --release --bins --features alexpipe/hdf5
VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --release --quiet -m python/Cargo.toml --features hdf5
.venv/bin/python -m pytest -q tests/python "$@"
# Benchmarks, smoke: every bench binary on a tiny corpus (target/*-smoke), benches/compare.py on
# 160 images, benches/rrc.py (RandomResizedCrop) on 64 per corpus, benches/merge_ray.py (a build on Ray
# tasks, merged) on 24, with this venv's peers (the PyTorch DataLoader; DALI and FFCV live in the peers venv of
# benches/setup_peers.sh, ~6 GB, so here they are reported as not installed, which the smoke allows).
for bench in build_path build_formats loader hdf5 resume; do
  cargo bench --features alexpipe/hdf5 --bench "$bench" -- --smoke
done
.venv/bin/python benches/compare.py --smoke
.venv/bin/python benches/rrc.py --smoke
.venv/bin/python benches/merge_ray.py --smoke
# Streaming (docs/STREAMING.md): local, nginx cold and warm cache, WebDataset over the same nginx.
.venv/bin/python benches/stream.py --smoke
.venv/bin/python benches/timm_recipe.py --smoke
# The main job on the fixtures: shards, a short CPU training run, its pictures.
DEMO_CARGO_FEATURES=alexpipe/hdf5 scripts/demo.sh --quick
