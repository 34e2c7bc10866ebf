"""The Python path against the Rust engine and the PyTorch DataLoader, in one run, same data and cores.

For f32 NCHW (crop, flip, lighting, mean image) and u8 NHWC (crop, flip) batches of 128 from the raw
shards of the benchmark corpus, images/s of:
  rust    — the engine draining an epoch inside Rust (Loader.drain_epoch): no Python per batch
  python  — iterating alexpipe.Loader from Python (zero-copy numpy batches)
  torch   — alexpipe.torch.TorchLoader (torch.from_numpy on the same buffers)
  peer    — PyTorch DataLoader + torch ops doing the same work (benches/peer_torch.py's Augment)
Goal: python ≥ 90 % of rust.

Usage: .venv/bin/python benches/python_loader.py [--count 1000] [--epochs 3] [--threads N]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import alexpipe

ROOT = Path(__file__).resolve().parents[1]


def rate_python(loader, epochs):
    n, t = 0, time.perf_counter()
    for e in range(epochs):
        loader.set_epoch(e)
        for images, labels in loader:
            n += images.shape[0]
    return n / (time.perf_counter() - t)


def rate_rust(loader, epochs):
    n = s = 0
    for e in range(epochs):
        loader.set_epoch(e)
        images, secs = loader.drain_epoch()
        n, s = n + images, s + secs
    return n / s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    corpus = ROOT / "target" / "bench-corpus"
    subprocess.run([sys.executable, ROOT / "benches" / "make_corpus.py", corpus, "--count", str(args.count)], check=True)
    shards = ROOT / "target" / f"bench-shards-raw-{args.count}"
    try:
        alexpipe.Dataset(shards)  # a cached build this alexpipe still opens
    except (OSError, ValueError, alexpipe.AlexpipeError):
        alexpipe.build_shards(corpus, shards, progress=False)
    print(f"{args.count} images x {args.epochs} epochs, batches of 128, {args.threads} threads (images/s)")
    print(f"{'layout':<10} {'rust':>8} {'python':>8} {'python/rust':>12} {'torch':>8} {'peer':>8}")
    for layout in ("f32_nchw", "u8_nhwc"):
        loader = alexpipe.Loader(shards, threads=args.threads, layout=layout)
        # Warm-up, both ways: fills the buffer pool (a Python consumer holds one batch more while the
        # next arrives) and verifies each record's checksum once.
        rate_rust(loader, 1)
        rate_python(loader, 1)
        rust = rate_rust(loader, args.epochs)
        python = rate_python(loader, args.epochs)
        torch_rate = peer = float("nan")
        try:
            from alexpipe.torch import TorchLoader

            tl = TorchLoader(shards, threads=args.threads, layout=layout)
            rate_python(tl, 1)
            torch_rate = rate_python(tl, args.epochs)
            what = "array-f32" if layout == "f32_nchw" else "array-u8"
            out = subprocess.run(
                [sys.executable, ROOT / "benches" / "peer_torch.py", corpus, "--shards", shards, "--what", what,
                 "--workers", str(args.threads), "--epochs", str(args.epochs)],
                check=True, capture_output=True, text=True)
            peer = __import__("json").loads(out.stdout)["images_per_s"]
        except ImportError:
            pass
        print(f"{layout:<10} {rust:>8.0f} {python:>8.0f} {python / rust:>11.0%} {torch_rate:>8.0f} {peer:>8.0f}")


if __name__ == "__main__":
    main()
