"""Generates the benchmark corpus: real-photo JPEGs at ImageNet-like sizes, as an ImageFolder.

Sources are the real photographs shipped inside the scikit-image and scikit-learn wheels. Each
output is a random crop of one photo, rescaled so its short side is 300–500 px (ImageNet's typical
~400×350), saved as JPEG at quality 85–95 — some progressive, as in ImageNet. Deterministic for a
given seed and library versions.

Usage: .venv/bin/python benches/make_corpus.py OUT_DIR [--count 1000] [--classes 10] [--seed 0]
       [--short-min 300 --short-max 500]   (e.g. 1200/2400 for camera-size photos, where --draft pays)
Rerunning with the same arguments reuses an existing complete corpus.
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def photo_paths():
    import skimage
    import sklearn

    sk = Path(skimage.__file__).parent / "data"
    sl = Path(sklearn.__file__).parent / "datasets" / "images"
    names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg", "hubble_deep_field.jpg"]
    return [sk / n for n in names] + [sl / "china.jpg", sl / "flower.jpg"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--short-min", type=int, default=300)
    ap.add_argument("--short-max", type=int, default=500)
    args = ap.parse_args()
    stamp = args.out / "corpus.json"
    spec = {
        "count": args.count,
        "classes": args.classes,
        "seed": args.seed,
        "short": [args.short_min, args.short_max],
        "version": 2,
    }
    if stamp.exists() and json.loads(stamp.read_text()) == spec:
        print(f"corpus {args.out} is up to date ({args.count} files)")
        return
    if args.out.exists():
        shutil.rmtree(args.out)
    rng = np.random.default_rng(args.seed)
    photos = [Image.open(p).convert("RGB") for p in photo_paths()]
    for c in range(args.classes):
        (args.out / f"class{c:03d}").mkdir(parents=True)
    for i in range(args.count):
        im = photos[int(rng.integers(len(photos)))]
        w, h = im.size
        cw, ch = int(w * rng.uniform(0.5, 1.0)), int(h * rng.uniform(0.5, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        short = int(rng.integers(args.short_min, args.short_max + 1))
        s = short / min(cw, ch)
        out = im.crop((x, y, x + cw, y + ch)).resize((round(cw * s), round(ch * s)), Image.BICUBIC)
        if rng.random() < 0.5:
            out = out.transpose(Image.FLIP_LEFT_RIGHT)
        path = args.out / f"class{i % args.classes:03d}" / f"img{i:06d}.jpg"
        out.save(path, quality=int(rng.integers(85, 96)), progressive=bool(rng.random() < 0.1))
    stamp.write_text(json.dumps(spec))
    print(f"wrote {args.count} JPEGs to {args.out}")


if __name__ == "__main__":
    main()
