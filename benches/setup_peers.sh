#!/usr/bin/env bash
# Installs the peer loaders for the benchmarks into target/peers-venv (kept apart from the test
# venv: the Linux torch wheel is a CUDA build, ~5 GB with its nvidia-* wheels). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ ! -x target/peers-venv/bin/python ]; then
  python3 -m venv target/peers-venv
fi
target/peers-venv/bin/python -m pip install -q --disable-pip-version-check \
  torch==2.11.0 torchvision==0.26.0 numpy==2.4.6 pillow==13.0.0 crc32c==2.8
