"""RandomResizedCrop 224 + flip + normalise from full-size JPEGs: alexpipe against its peers, same run.

    .venv/bin/python benches/rrc.py [--count 600] [--rounds 3] [--threads 2]
    .venv/bin/python benches/rrc.py --smoke          # seconds: every loader runs once on a tiny corpus

Two corpora of real-photo JPEGs from benches/make_corpus.py (crops of the scikit-image and
scikit-learn photos, quality 85-95, some progressive): ImageNet-like (short side 300-500 px) and
camera-size (short side 1,200-2,400 px). alexpipe reads them as an `--mode original` dataset (the
source files' bytes, untouched), so every loader decodes the same JPEGs. Every loader does the same
work per image: torchvision's RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3, antialiased bilinear
to 224×224), a mirror with p = 0.5, then either float32 NCHW normalised with the ImageNet mean/std or
uint8 NHWC. Loaders:

- alexpipe, decode="crop" (crop-aware: DCT scale per sample + cropping region) and decode="exact"
  (full decode, the window cut out and resized);
- torchvision.transforms.v2 on PIL images in a torch DataLoader (`--threads` worker processes);
- DALI CPU (`fn.decoders.image_random_crop` → `fn.resize` → `fn.crop_mirror_normalize`) and FFCV
  (`RandomResizedCropRGBImageDecoder` → `RandomHorizontalFlip` → `NormalizeImage`, from a .beton
  its own writer made of the same photos: JPEG at quality 95, full size), when installed
  (benches/setup_peers.sh: run this script with target/peers-venv/bin/python); otherwise their rows
  say "not installed".

Each loader is made once and runs one warm-up epoch, then `--rounds` timed epochs interleaved round by
round (round r runs every loader once), so machine drift hits every loader alike; batches of 32, so
an epoch is many batches and no loader's prefetch (DALI's queue, the DataLoader's workers, alexpipe's
`prefetch`) covers much of it. The table shows the median images/s and the ratio of alexpipe's best
decode mode to the best peer measured.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BATCH = 32
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def corpus(out, count, short):
    subprocess.run(
        [sys.executable, str(ROOT / "benches" / "make_corpus.py"), str(out), "--count", str(count), "--classes", "4",
         "--short-min", str(short[0]), "--short-max", str(short[1])],
        check=True, stdout=subprocess.DEVNULL,
    )


def shards(images, out):
    if not (out / "manifest.json").exists():
        import alexpipe

        alexpipe.build_shards(str(images), str(out), mode="original", progress=False)


def alexpipe_loader(ds, layout, decode, threads):
    import alexpipe

    return alexpipe.Loader(ds, batch_size=BATCH, recipe="rrc", decode=decode, layout=layout, threads=threads)


def alexpipe_epoch(loader, epoch):
    loader.set_epoch(epoch)
    n = 0
    for images, _ in loader:
        n += images.shape[0]
    return n


def torchvision_loader(images, layout, threads):
    import torch
    import torchvision
    from torchvision.transforms import v2

    steps = [v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip(), v2.PILToTensor()]
    if layout == "f32_nchw":
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    ds = torchvision.datasets.ImageFolder(str(images), transform=v2.Compose(steps))
    return torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=threads, drop_last=True,
                                       persistent_workers=True)


def torchvision_epoch(loader, layout):
    n = 0
    for images, _ in loader:
        if layout == "u8_nhwc":
            images = images.permute(0, 2, 3, 1).contiguous()
        n += images.shape[0]
    return n


def dali_pipeline(images, layout, threads):
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=BATCH, num_threads=threads, device_id=None)
    def pipe():
        jpegs, labels = fn.readers.file(file_root=str(images), random_shuffle=True, name="r")
        img = fn.decoders.image_random_crop(jpegs, device="cpu", output_type=types.RGB,
                                            random_area=[0.08, 1.0], random_aspect_ratio=[3 / 4, 4 / 3])
        img = fn.resize(img, resize_x=224, resize_y=224, antialias=True)
        mirror = fn.random.coin_flip(probability=0.5)
        if layout == "f32_nchw":
            img = fn.crop_mirror_normalize(img, dtype=types.FLOAT, output_layout="CHW", mirror=mirror,
                                           mean=[m * 255 for m in MEAN], std=[s * 255 for s in STD])
        else:
            img = fn.crop_mirror_normalize(img, dtype=types.UINT8, output_layout="HWC", mirror=mirror)
        return img, labels

    p = pipe()
    p.build()
    return p


def dali_epoch(p, count):
    n = 0
    while n + BATCH <= count:
        out = p.run()
        n += len(out[0])
    p.reset()
    return n


def ffcv_loader(images, layout, threads, beton):
    import torch
    import torchvision
    from ffcv.fields import IntField, RGBImageField
    from ffcv.fields.decoders import IntDecoder, RandomResizedCropRGBImageDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import NormalizeImage, RandomHorizontalFlip, ToTensor, ToTorchImage
    from ffcv.writer import DatasetWriter

    if not beton.exists():
        folder = torchvision.datasets.ImageFolder(str(images))
        writer = DatasetWriter(str(beton), {"image": RGBImageField(write_mode="jpg", jpeg_quality=95),
                                            "label": IntField()}, num_workers=threads)
        writer.from_indexed_dataset(folder)
    pipeline = [RandomResizedCropRGBImageDecoder((224, 224)), RandomHorizontalFlip()]
    if layout == "f32_nchw":
        # Jitted ops before the torch conversions (FFCV 1.0.2's compiler needs that order).
        pipeline += [NormalizeImage(np.array(MEAN) * 255, np.array(STD) * 255, np.float32), ToTensor(), ToTorchImage()]
    else:
        pipeline += [ToTensor()]
    del torch
    return Loader(str(beton), batch_size=BATCH, num_workers=threads, order=OrderOption.RANDOM, drop_last=True,
                  pipelines={"image": pipeline, "label": [IntDecoder(), ToTensor()]})


def ffcv_epoch(loader):
    n = 0
    for images, _ in loader:
        n += images.shape[0]
    return n


def available(module):
    try:
        __import__(module)
        return True
    except Exception:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=960)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.count, args.rounds = 2 * BATCH, 1
    base = ROOT / "target" / ("rrc-bench-smoke" if args.smoke else "rrc-bench")
    corpora = {
        "ImageNet-like (short side 300-500 px)": (300, 500),
        "camera-size (short side 1,200-2,400 px)": (1200, 2400),
    }
    print(f"RandomResizedCrop 224 + flip + normalise, {args.count} full-size JPEGs per corpus, batches of {BATCH}, "
          f"{args.threads} threads/workers, {args.rounds} interleaved rounds after a warm-up\n")
    for name, short in corpora.items():
        # Camera-size photos are ~10x the work each: a third as many.
        count = args.count if short[0] < 1000 else max(2 * BATCH, args.count // 3)
        images = base / f"images-{short[0]}"
        ds = base / f"shards-{short[0]}"
        corpus(images, count, short)
        shards(images, ds)
        for layout in ("f32_nchw", "u8_nhwc"):
            runs = {}
            tv = torchvision_loader(images, layout, args.threads)
            crop = alexpipe_loader(str(ds), layout, "crop", args.threads)
            exact = alexpipe_loader(str(ds), layout, "exact", args.threads)
            loaders = {
                "alexpipe crop-aware": lambda e: alexpipe_epoch(crop, e),
                "alexpipe exact": lambda e: alexpipe_epoch(exact, e),
                "torchvision v2 + DataLoader": lambda e: torchvision_epoch(tv, layout),
            }
            missing = []
            if available("nvidia.dali"):
                dp = dali_pipeline(images, layout, args.threads)
                loaders["DALI CPU"] = lambda e: dali_epoch(dp, count)
            else:
                missing.append("DALI CPU")
            if available("ffcv"):
                fl = ffcv_loader(images, layout, args.threads, base / f"ffcv-{short[0]}.beton")
                loaders["FFCV"] = lambda e: ffcv_epoch(fl)
            else:
                missing.append("FFCV")
            for run in loaders.values():  # warm-up: page cache, worker start, pools
                run(0)
            for r in range(args.rounds):
                for key, run in loaders.items():
                    t = time.perf_counter()
                    n = run(r + 1)
                    runs.setdefault(key, []).append(n / (time.perf_counter() - t))
            print(f"## {name}, {layout}")
            print("| loader | images/s (median) | min-max |")
            print("|---|---:|---:|")
            for key, rates in runs.items():
                print(f"| {key} | {statistics.median(rates):,.0f} | {min(rates):,.0f}-{max(rates):,.0f} |")
            for key in missing:
                print(f"| {key} | not installed (benches/setup_peers.sh) | |")
            ours = max(statistics.median(runs[k]) for k in runs if k.startswith("alexpipe"))
            peers = {k: statistics.median(v) for k, v in runs.items() if not k.startswith("alexpipe")}
            best = max(peers, key=peers.get)
            print(f"\nalexpipe's best / best peer measured ({best}): {ours / peers[best]:.2f}x\n")
            del tv


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
