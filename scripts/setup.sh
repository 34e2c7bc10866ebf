#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine with the Rust toolchain and Python 3:
#  - cmake and nasm, to build the bundled libjpeg-turbo (turbojpeg-sys) with its SIMD code;
#  - libhdf5-dev and pkg-config, for the `hdf5` cargo feature (HDF5 input/output, hdf5-metno);
#  - nginx, which the streaming tests start on 127.0.0.1 with a config of their own;
#  - Debian's dataset-fashion-mnist (real labelled images for the trainer's "does it learn" test);
#  - .venv with the Python packages of requirements-dev.txt (test oracles, real photos, and
#    torch==2.11.0, whose libtorch the trainer links: tch 0.24 expects exactly that version);
#  - .venv/libtorch, a link to that torch's package directory (include/ and lib/), which
#    .cargo/config.toml hands to torch-sys as LIBTORCH, so cargo needs no hand-set variables.
# Safe to run any number of times; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  echo "setup: installing Debian packages: $*" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v nasm >/dev/null 2>&1 || need+=(nasm)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# nginx: the web server the streaming tests and benchmark serve datasets from (127.0.0.1, own config).
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
pkg-config --exists hdf5 2>/dev/null || [ -f /usr/include/hdf5/serial/hdf5.h ] || need+=(libhdf5-dev)
if ((${#need[@]})); then apt_install "${need[@]}"; fi

if [ ! -x .venv/bin/python ]; then
  rm -rf .venv
  if ! python3 -m venv .venv 2>/dev/null; then
    # Debian's python3 ships without ensurepip: python3-venv (or python3.X-venv) provides it.
    rm -rf .venv
    ver=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    apt_install python3-venv "python${ver}-venv" || apt_install python3-venv
    python3 -m venv .venv
  fi
fi
stamp=.venv/.alexpipe-requirements
if ! cmp -s requirements-dev.txt "$stamp"; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
  cp requirements-dev.txt "$stamp"
fi

# The trainer's libtorch: torch's own package directory, found without importing torch (fast).
torch_dir=$(.venv/bin/python -c 'import importlib.util as u; print(u.find_spec("torch").submodule_search_locations[0])')
[ "$(readlink .venv/libtorch 2>/dev/null)" = "$torch_dir" ] || ln -sfn "$torch_dir" .venv/libtorch
