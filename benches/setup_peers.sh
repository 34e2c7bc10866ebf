#!/usr/bin/env bash
# Installs the peer loaders for the benchmarks into target/peers-venv, kept apart from the test venv:
# torch 2.11.0 + torchvision 0.26.0 (the Linux wheel is a CUDA build, ~4.7 GB), NVIDIA DALI 2.4 (its
# CPU-only pipelines run without a GPU), FFCV 1.0.2 (needs Debian's libturbojpeg0-dev, libopencv-dev
# and pkg-config to build; if it does not install, the benchmark reports it as not run) and
# matplotlib for the chart. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -x target/peers-venv/bin/python ]; then
  python3 -m venv target/peers-venv
fi
pip=(target/peers-venv/bin/python -m pip install -q --disable-pip-version-check)
"${pip[@]}" torch==2.11.0 torchvision==0.26.0 numpy==2.4.6 pillow==13.0.0 crc32c==2.8 \
  nvidia-dali-cuda120==2.4.0 matplotlib==3.11.2
if ! target/peers-venv/bin/python -c "import ffcv" 2>/dev/null; then
  if ! dpkg -s libturbojpeg0-dev libopencv-dev pkg-config >/dev/null 2>&1; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
      libturbojpeg0-dev libopencv-dev pkg-config >/dev/null
  fi
  "${pip[@]}" numba ffcv==1.0.2 || echo "setup_peers: FFCV did not install; it will be reported as not run" >&2
fi
