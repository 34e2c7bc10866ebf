#!/usr/bin/env python3
"""Writes Fashion-MNIST (Debian's dataset-fashion-mnist, installed by scripts/setup.sh) as two
ImageFolder trees of PNGs, OUT/train and OUT/test, one sub-folder per class, for build-shards.

Usage: fashion_mnist.py OUT [--train-limit N]   (the first N training images of each class)
Idempotent: a finished tree (OUT/.complete) is left alone.
"""
import argparse
import gzip
import pathlib
import shutil
import sys

import numpy as np
from PIL import Image

SOURCE = pathlib.Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["0_tshirt_top", "1_trouser", "2_pullover", "3_dress", "4_coat",
           "5_sandal", "6_shirt", "7_sneaker", "8_bag", "9_ankle_boot"]


def idx(path: pathlib.Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def write(split: str, prefix: str, out: pathlib.Path, limit: int | None) -> int:
    labels = idx(SOURCE / f"{prefix}-labels-idx1-ubyte.gz", 8)
    images = idx(SOURCE / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    assert len(images) == len(labels), "image and label files disagree"
    for name in CLASSES:
        (out / split / name).mkdir(parents=True, exist_ok=True)
    taken = np.zeros(len(CLASSES), int)
    for i, (img, label) in enumerate(zip(images, labels)):
        if limit is not None and taken[label] >= limit:
            continue
        taken[label] += 1
        Image.fromarray(img, "L").save(out / split / CLASSES[label] / f"{i:05d}.png", compress_level=1)
    return int(taken.sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--train-limit", type=int, default=None)
    a = ap.parse_args()
    if not (SOURCE / "train-images-idx3-ubyte.gz").exists():
        print(f"{SOURCE}: missing; install Debian's dataset-fashion-mnist (scripts/setup.sh does)", file=sys.stderr)
        return 1
    stamp = a.out / ".complete"
    wanted = f"train-limit={a.train_limit}\n"
    if stamp.exists() and stamp.read_text() == wanted:
        return 0
    shutil.rmtree(a.out, ignore_errors=True)
    n_train = write("train", "train", a.out, a.train_limit)
    n_test = write("test", "t10k", a.out, None)
    stamp.write_text(wanted)
    print(f"{a.out}: {n_train} training and {n_test} test images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
