#!/usr/bin/env bash
# The main job on the bundled fixtures: set-up (idempotent), shards + statistics of fixtures/images
# in out/fixtures and of the held-out fixtures/val in out/fixtures-val, then a small AlexNet trained
# briefly on the CPU, validated on the held-out images (run directory
# out/train-fixtures: metrics.jsonl, metrics.csv, checkpoints, curves.png, conv1.png,
# neighbours.png). A rerun replaces them.
#
# DEMO_CARGO_FEATURES (e.g. alexpipe/hdf5, as scripts/test.sh builds) is passed to cargo as
# --features, so the demo reuses that build instead of compiling a second feature set.
# --quick: exactly this fixtures run (today it is also the default; CI runs `scripts/demo.sh --quick`
# from scripts/test.sh so a broken main job fails the suite). Other options go to build-shards.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
for a in "$@"; do
  [ "$a" = --quick ] || args+=("$a")
done
set -- ${args[@]+"${args[@]}"}
scripts/setup.sh
mkdir -p out
cargo=(cargo run --release ${DEMO_CARGO_FEATURES:+--features "$DEMO_CARGO_FEATURES"})
"${cargo[@]}" --bin build-shards -- fixtures/images out/fixtures "$@"
"${cargo[@]}" --bin build-shards -- fixtures/val out/fixtures-val "$@"
"${cargo[@]}" --bin train
# Pictures of the run (§6.1): train wrote curves.png; the learned conv1 kernels (Figure 3) and, for
# held-out images, the training images nearest by fc7 features (Figure 4).
"${cargo[@]}" --quiet --bin alexpipe-viz -- filters out/train-fixtures/best.ot -o out/train-fixtures/conv1.png
"${cargo[@]}" --quiet --bin alexpipe-viz -- neighbours out/train-fixtures/best.ot \
  --query out/fixtures-val --gallery out/fixtures -o out/train-fixtures/neighbours.png
