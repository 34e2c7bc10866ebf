#!/usr/bin/env bash
# GPU check of the trainer (issue: data-wait ≤ 2 % of step time), for a Linux x86-64 machine with an
# NVIDIA GPU and PyTorch 2.11 installed, but no Rust toolchain and no network. Build beforehand on
# the CPU machine (`cargo build --release --bins`) and copy target/release/{train,build-shards} and
# this script; then run it from the repository root:
#
#   scripts/gpu-check.sh [STEPS_PER_EPOCH] [EPOCHS]      (defaults 32 and 4: 128 steps of 128 images)
#
# It writes synthetic raw shards (random 256×256 images in 10 classes, generated in pure Python),
# trains the full-size AlexNet on CUDA with the engine on all cores, and prints each epoch's
# images/s and data-wait % (time the loop waited for the engine). Epoch 1 includes cuDNN's
# autotuning; read the later ones.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-32}
epochs=${2:-4}
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
"$python" - "$work" "$((steps * 128))" <<'PY'
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

rm -rf "$work/run"
"$bin/train" --train "$work/train-shards" --val "$work/val-shards" --out "$work/run" \
  --device cuda --epochs "$epochs" --batch-size 128 --quiet
echo "per epoch (images/s, data-wait %):"
"$python" - "$work/run/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows:
    print(f"  epoch {r['epoch']}: {r['images_per_s']:.0f} img/s, data wait {r['data_wait_pct']:.2f} %, "
          f"train {r['train_s']:.1f} s")
later = rows[1:] or rows
wait = sum(r["data_wait_pct"] * r["train_s"] for r in later) / sum(r["train_s"] for r in later)
speed = sum(r["images_per_s"] * r["train_s"] for r in later) / sum(r["train_s"] for r in later)
print(f"after epoch 1: {speed:.0f} img/s, data wait {wait:.2f} % (goal ≤ 2 %)")
PY
