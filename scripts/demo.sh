#!/usr/bin/env bash
# The main job on the bundled fixtures: set-up (idempotent), shards + statistics of fixtures/images
# in out/fixtures, then a small AlexNet trained briefly on them on the CPU (run directory
# out/train-fixtures: metrics.jsonl, metrics.csv, checkpoints, curves.png, conv1.png,
# neighbours.png). A rerun replaces both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p out
cargo run --release --bin build-shards -- fixtures/images out/fixtures "$@"
cargo run --release --bin train
# Pictures of the run (§6.1): train wrote curves.png; the learned conv1 kernels (Figure 3) and each
# query's nearest images by fc7 features (Figure 4; the fixtures have no separate validation set,
# so the queries come from the training images and find themselves first, at distance 0).
cargo run --release --quiet --bin alexpipe-viz -- filters out/train-fixtures/best.ot -o out/train-fixtures/conv1.png
cargo run --release --quiet --bin alexpipe-viz -- neighbours out/train-fixtures/best.ot \
  --query out/fixtures --gallery out/fixtures -o out/train-fixtures/neighbours.png
