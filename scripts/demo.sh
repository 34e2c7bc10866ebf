#!/usr/bin/env bash
# The main job: AlexNet learning real images, through the same steps a user takes on their own data.
# Set-up (idempotent), then Fashion-MNIST (70,000 real photographs of garments from Debian's
# dataset-fashion-mnist) written as an ImageFolder of PNGs, built into checksummed 72×72 shards with
# their statistics (`build-shards`, progress bar), a ¼-width AlexNet trained on the CPU for 10 epochs
# on random 64×64 patches with the paper's mirrors and PCA lighting (`train --preset small --width
# 0.25`, the learning rate divided by 10 after epochs 7 and 9), validated on the 10,000 held-out
# test images, its pictures (conv1 kernels, training curves, nearest neighbours by fc7), and a
# summary: accuracy, engine vs step images/s, data wait, where everything is, what to try next.
# Everything lands in out/; a rerun rebuilds the shards and replaces the run (out/train-fashion-mnist).
#
# --quick: the 31 bundled fixtures instead (seconds of training; what CI runs, so a broken main job
# fails the suite). DEMO_CARGO_FEATURES (e.g. alexpipe/hdf5, as scripts/test.sh builds) is passed to
# cargo as --features, so the demo reuses that build. Other options go to build-shards.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
args=()
for a in "$@"; do
  if [ "$a" = --quick ]; then quick=1; else args+=("$a"); fi
done
set -- ${args[@]+"${args[@]}"}
scripts/setup.sh
mkdir -p out
cargo=(cargo run --release ${DEMO_CARGO_FEATURES:+--features "$DEMO_CARGO_FEATURES"})
viz=("${cargo[@]}" --quiet --bin alexpipe-viz --)

if [ "$quick" = 1 ]; then
  "${cargo[@]}" --quiet --bin build-shards -- fixtures/images out/fixtures "$@"
  "${cargo[@]}" --quiet --bin build-shards -- fixtures/val out/fixtures-val "$@"
  "${cargo[@]}" --quiet --bin train
  run=out/train-fixtures
  "${viz[@]}" filters "$run/best.ot" -o "$run/conv1.png"
  "${viz[@]}" neighbours "$run/best.ot" --query out/fixtures-val --gallery out/fixtures -o "$run/neighbours.png"
  .venv/bin/python scripts/demo_summary.py "$run" out/fixtures out/fixtures-val
  exit 0
fi

data=out/fashion-mnist
run=out/train-fashion-mnist
.venv/bin/python scripts/fashion_mnist.py "$data/png"
"${cargo[@]}" --quiet --bin build-shards -- "$data/png/train" "$data/train" --size 72 "$@"
"${cargo[@]}" --quiet --bin build-shards -- "$data/png/test" "$data/test" --size 72 "$@"
rm -rf "$run"
"${cargo[@]}" --quiet --bin train -- --train "$data/train" --val "$data/test" --out "$run" \
  --preset small --width 0.25 --epochs 10 --lr-drop-after 7,9 --device cpu
# Pictures of the run (§6.1): train drew curves.png; the learned conv1 kernels (Figure 3) and, for
# held-out images, the training images nearest by fc7 features (Figure 4).
"${viz[@]}" filters "$run/best.ot" -o "$run/conv1.png" --scale 8
"${viz[@]}" neighbours "$run/best.ot" --query "$data/test" --gallery "$data/train" --queries 6 -k 7 \
  -o "$run/neighbours.png"
.venv/bin/python scripts/demo_summary.py "$run" "$data/train" "$data/test"
