#!/usr/bin/env bash
# The main job on the bundled fixtures: set-up (idempotent), shards + statistics of fixtures/images
# in out/fixtures, then a small AlexNet trained briefly on them on the CPU (run directory
# out/train-fixtures: metrics.jsonl, metrics.csv, checkpoints). A rerun replaces both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p out
cargo run --release --bin build-shards -- fixtures/images out/fixtures "$@"
cargo run --release --bin train
