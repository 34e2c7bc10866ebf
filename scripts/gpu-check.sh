#!/usr/bin/env bash
# GPU check of the trainer: for the full-size AlexNet (batch 128) and each of f32/u8 upload ×
# f32/bf16 arithmetic, images/s of the step alone (one synthetic batch resident on the device: no
# engine, no upload; with cuDNN's heuristic algorithms and with its benchmark, the trainer's default), images/s end to end (engine → upload → step) and the data-wait %, as one
# table. Goal: data wait ≤ 2 % and end to end ≥ 95 % of the step alone.
#
# For a Linux x86-64 machine with an NVIDIA GPU and PyTorch 2.11 installed, but no Rust toolchain
# and no network. On the build machine:
#
#   scripts/gpu-check.sh pack          # → target/gpu-check/bin/{train,build-shards}, debug info stripped
#
# (the release `train` carries line tables, > 100 MB; stripped it fits a 64 MiB carry), then copy
# target/gpu-check and this script, and on the GPU machine, from the repository root:
#
#   ALEXPIPE_BIN=target/gpu-check/bin scripts/gpu-check.sh [STEPS_PER_EPOCH]   (default 32)
#
# It writes synthetic raw shards (random 256×256 images in 10 classes, generated in pure Python),
# then, per row, `train --step-alone`, and two epochs of `train` whose second epoch (after cuDNN's
# autotuning) gives the end-to-end figures. A few minutes on an H100-class GPU with 16 cores.
# A dry run of the script itself on a CPU (tiny network, a few steps):
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_BATCH=8 GPU_CHECK_TRAIN_ARGS="--width 0.125 --crop 64" scripts/gpu-check.sh 2
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = pack ]; then
  # Without the hdf5 feature (the GPU machine has no libhdf5); CARGO_TARGET_DIR is honoured, so a
  # copy of a warm target/ can build it without touching the binaries the tests use.
  cargo build --release --bin train --bin build-shards
  mkdir -p target/gpu-check/bin
  for b in train build-shards; do
    objcopy --strip-debug "${CARGO_TARGET_DIR:-target}/release/$b" "target/gpu-check/bin/$b"
  done
  du -sh target/gpu-check
  exit 0
fi

steps=${1:-32}
device=${GPU_CHECK_DEVICE:-cuda}
batch=${GPU_CHECK_BATCH:-128}
read -r -a extra <<< "${GPU_CHECK_TRAIN_ARGS:-}"
bin=${ALEXPIPE_BIN:-target/release}
work=${GPU_CHECK_DIR:-${OUT:-/tmp}/gpu-check}
python=${PYTHON:-python3}

# libtorch from the installed PyTorch (the binary's own rpath points at the build machine's).
torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "cores: $(nproc)"

mkdir -p "$work"
# Random images as binary PPM (P6): no imaging library needed on this machine.
"$python" - "$work" "$((steps * batch))" <<'PY'
import os, sys
work, n = sys.argv[1], int(sys.argv[2])
for split, count in (("train", n), ("val", 256)):
    for i in range(count):
        d = os.path.join(work, split, f"class_{i % 10}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"{i:06d}.ppm")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(b"P6\n256 256\n255\n" + os.urandom(256 * 256 * 3))
PY
for split in train val; do
  [ -f "$work/$split-shards/manifest.json" ] || "$bin/build-shards" "$work/$split" "$work/$split-shards" --quiet
done

common=(--train "$work/train-shards" --device "$device" --batch-size "$batch" --quiet "${extra[@]}")
table="$work/table.tsv"
: > "$table"
for precision in f32 bf16; do
  alone=$("$bin/train" "${common[@]}" --precision "$precision" --step-alone 40 | sed -n 's/^step alone: \([0-9]*\) .*/\1/p')
  heuristic=$("$bin/train" "${common[@]}" --precision "$precision" --step-alone 40 --no-cudnn-benchmark | sed -n 's/^step alone: \([0-9]*\) .*/\1/p')
  for upload in f32 u8; do
    run="$work/run-$upload-$precision"
    rm -rf "$run"
    "$bin/train" "${common[@]}" --val "$work/val-shards" --out "$run" --epochs 2 \
      --upload "$upload" --precision "$precision"
    printf '%s\t%s\t%s\t%s\t%s\n' "$upload" "$precision" "$heuristic" "$alone" "$run/metrics.jsonl" >> "$table"
  done
done

"$python" - "$table" <<'PY'
import json, sys
print()
print("| upload | precision | step alone, cuDNN heuristics, img/s | step alone, img/s | end to end, img/s | end to end / step alone | data wait | train loss, epochs 1 and 2 |")
print("|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    upload, precision, heuristic, alone, metrics = line.rstrip("\n").split("\t")
    rows = [json.loads(l) for l in open(metrics)]
    last = rows[-1]   # epoch 2: after cuDNN's autotuning
    e2e, wait = last["images_per_s"], last["data_wait_pct"]
    # The same seed gives the same batches for both uploads: the losses differ only by the
    # finishing's rounding (u8 finished on the device vs f32 from the engine).
    losses = " / ".join(f"{r['train_loss']:.5f}" for r in rows)
    print(f"| {upload} | {precision} | {float(heuristic):,.0f} | {float(alone):,.0f} | {e2e:,.0f} | {100 * e2e / float(alone):.0f} % | {wait:.2f} % | {losses} |")
print()
print("goal: data wait ≤ 2 % and end to end ≥ 95 % of the step alone")
PY
