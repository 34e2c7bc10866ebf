"""PIL doing build-shards' per-image work — read, decode, convert to RGB, torchvision Resize(256)
(antialiased BILINEAR) and CenterCrop(256) to a uint8 array — on a list of files, over N processes.
Prints one JSON line: {"images": n, "seconds": s, "images_per_s": r}.

With --decode-only, only Image.open(...).load(): the libjpeg-turbo decode that bounds both sides.

Usage: .venv/bin/python benches/pil_build.py FILE_LIST [--procs N] [--draft] [--decode-only] [--size 256]
"""

import argparse
import json
import time
from multiprocessing import Pool

import numpy as np
from PIL import Image

SIZE = 256
DRAFT = False
DECODE_ONLY = False


def prep(path):
    if DECODE_ONLY:
        im = Image.open(path)
        im.load()
        return im.size
    im = Image.open(path)
    if DRAFT:
        im.draft("RGB", (2 * SIZE, 2 * SIZE))
    im = im.convert("RGB")
    w, h = im.size
    nw, nh = (SIZE, int(SIZE * h / w)) if w <= h else (int(SIZE * w / h), SIZE)
    im = im.resize((nw, nh), Image.BILINEAR)
    left, top = int(round((nw - SIZE) / 2.0)), int(round((nh - SIZE) / 2.0))
    return np.asarray(im.crop((left, top, left + SIZE, top + SIZE))).shape


def init(size, draft, decode_only):
    global SIZE, DRAFT, DECODE_ONLY
    SIZE, DRAFT, DECODE_ONLY = size, draft, decode_only


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file_list")
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--draft", action="store_true")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--decode-only", action="store_true")
    args = ap.parse_args()
    files = open(args.file_list).read().split("\n")
    files = [f for f in files if f]
    init(args.size, args.draft, args.decode_only)
    if args.procs == 1:
        t = time.perf_counter()
        for f in files:
            prep(f)
        dt = time.perf_counter() - t
    else:
        with Pool(args.procs, initializer=init, initargs=(args.size, args.draft, args.decode_only)) as pool:
            pool.map(prep, files[: args.procs * 4])  # warm the workers
            t = time.perf_counter()
            pool.map(prep, files, chunksize=16)
            dt = time.perf_counter() - t
    print(json.dumps({"images": len(files), "seconds": dt, "images_per_s": len(files) / dt}))


if __name__ == "__main__":
    main()
