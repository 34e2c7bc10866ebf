"""The full timm-style training recipe from full-size JPEGs: alexpipe against timm's loader, same run.

    .venv/bin/python benches/timm_recipe.py [--count 480] [--rounds 3] [--threads 2] [--interpolation random]
    .venv/bin/python benches/timm_recipe.py --smoke          # seconds: every loader runs once on a tiny corpus

The recipe, per image: RandomResizedCrop 224 (scale 0.08-1, ratio 3/4-4/3, bilinear; --interpolation
bicubic, or random as timm's train.py: either per image), mirror p = 0.5,
TrivialAugmentWide (31 bins, nearest, fill 0), ColorJitter(0.4, 0.4, 0.4), float32 NCHW normalised
with the ImageNet mean/std, random erasing (p 0.25, timm's mode "pixel"); per batch timm's Mixup
(MixUp α 0.8, CutMix α 1.0, switch 0.5, label smoothing 0.1) to [N, classes] soft labels. The
corpus is benches/make_corpus.py's ImageNet-like real-photo JPEGs (short side 300-500 px); alexpipe
reads them as an `--mode original` dataset (the files' bytes), so both loaders decode the same JPEGs.

- alexpipe: `Loader(recipe="rrc", trivial_augment=True, color_jitter=0.4, random_erasing=0.25,
  erasing_mode="pixel", mixup=0.8, cutmix=1.0)`, decode "crop" (crop-aware) and "exact".
- timm: a torch DataLoader (`--threads` worker processes) over an ImageFolder with timm's
  RandomResizedCropAndInterpolation, torchvision's RandomHorizontalFlip, TrivialAugmentWide and
  ColorJitter (timm's own factory has no TrivialAugment), timm's MaybeToTensor, Normalize and
  RandomErasing, and timm's Mixup on each batch in the main process (where timm's train.py runs it).
- DALI CPU with its nearest equivalents (see dali_loader: its erase fills with 0, not timm's per-pixel
  noise) and timm's Mixup on its batches, or "not installed" when nvidia.dali does not import (DALI
  lives outside the test venv: `pip install --target target/dali-site nvidia-dali-cuda120==2.4.0 ...`,
  then `PYTHONPATH=target/dali-site .venv/bin/python benches/timm_recipe.py`; see BENCHMARKS.md).

Each loader runs one warm-up epoch, then `--rounds` timed epochs interleaved round by round; batches
of 32. The table shows the median images/s and the ratio of alexpipe's best mode to the best peer.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 32
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def corpus(out, count):
    subprocess.run(
        [sys.executable, str(ROOT / "benches" / "make_corpus.py"), str(out), "--count", str(count), "--classes", "4",
         "--short-min", "300", "--short-max", "500"],
        check=True, stdout=subprocess.DEVNULL,
    )


def alexpipe_loader(ds, decode, threads, interpolation):
    import alexpipe

    return alexpipe.Loader(ds, batch_size=BATCH, recipe="rrc", decode=decode, threads=threads, trivial_augment=True,
                           color_jitter=0.4, random_erasing=0.25, erasing_mode="pixel", mixup=0.8, cutmix=1.0,
                           label_smoothing=0.1, interpolation=interpolation)


def alexpipe_epoch(loader, epoch):
    loader.set_epoch(epoch)
    n = 0
    for images, soft in loader:
        assert soft.ndim == 2
        n += images.shape[0]
    return n


def timm_loader(images, threads, interpolation):
    import torch
    import torchvision
    from timm.data.mixup import Mixup
    from timm.data.random_erasing import RandomErasing
    from timm.data.transforms import MaybeToTensor, RandomResizedCropAndInterpolation
    from torchvision import transforms

    tf = transforms.Compose([
        RandomResizedCropAndInterpolation(224, interpolation=interpolation),
        transforms.RandomHorizontalFlip(),
        transforms.TrivialAugmentWide(),
        transforms.ColorJitter(0.4, 0.4, 0.4),
        MaybeToTensor(),
        transforms.Normalize(MEAN, STD),
        RandomErasing(0.25, mode="pixel", device="cpu"),
    ])
    ds = torchvision.datasets.ImageFolder(str(images), transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=threads, drop_last=True,
                                         persistent_workers=True)
    mix = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=len(ds.classes))
    return loader, mix


def timm_epoch(loader, mix):
    n = 0
    for images, labels in loader:
        images, soft = mix(images, labels)
        n += images.shape[0]
    return n


def dali_loader(images, threads, interpolation):
    """DALI 2.4's CPU pipeline with its nearest equivalents of the recipe: decoders.image_random_crop
    (RandomResizedCrop's sampling inside the decoder) → resize 224 (antialiased) → auto_aug's
    trivial_augment_wide → color_twist (brightness, contrast, saturation in [0.6, 1.4]) →
    crop_mirror_normalize (mirror p 0.5, ImageNet mean/std, f32 CHW) → erase (p 0.25, area 2-33 %,
    ratio 0.3-3.3, filled with 0: DALI has no per-pixel noise fill); then timm's Mixup on each batch
    in the main process, as for timm's loader (DALI has no MixUp/CutMix operator)."""
    import numpy as np
    import torch
    from nvidia.dali import fn, math as dmath, pipeline_def, types
    from nvidia.dali.auto_aug import trivial_augment
    from timm.data.mixup import Mixup

    @pipeline_def(batch_size=BATCH, num_threads=threads, device_id=None, enable_conditionals=True)
    def pipe():
        jpegs, labels = fn.readers.file(file_root=str(images), random_shuffle=True, name="r")
        img = fn.decoders.image_random_crop(jpegs, device="cpu", output_type=types.RGB,
                                            random_area=[0.08, 1.0], random_aspect_ratio=[3 / 4, 4 / 3])
        interp = types.INTERP_CUBIC if interpolation == "bicubic" else types.INTERP_LINEAR
        img = fn.resize(img, resize_x=224, resize_y=224, antialias=True, interp_type=interp)
        img = trivial_augment.trivial_augment_wide(img)
        jitter = [0.6, 1.4]
        img = fn.color_twist(img, brightness=fn.random.uniform(range=jitter), contrast=fn.random.uniform(range=jitter),
                             saturation=fn.random.uniform(range=jitter))
        img = fn.crop_mirror_normalize(img, dtype=types.FLOAT, output_layout="CHW",
                                       mirror=fn.random.coin_flip(probability=0.5),
                                       mean=[m * 255 for m in MEAN], std=[s * 255 for s in STD])
        area = fn.random.uniform(range=[0.02, 0.33])
        ratio = dmath.exp(fn.random.uniform(range=[float(np.log(0.3)), float(np.log(3.3))]))
        h = dmath.min(dmath.sqrt(area * ratio), 1.0)
        w = dmath.min(dmath.sqrt(area / ratio), 1.0)
        on = fn.cast(fn.random.coin_flip(probability=0.25), dtype=types.FLOAT)
        shape = fn.stack(h * on, w * on)
        anchor = fn.stack(fn.random.uniform(range=[0.0, 1.0]) * (1.0 - h), fn.random.uniform(range=[0.0, 1.0]) * (1.0 - w))
        img = fn.erase(img, anchor=anchor, shape=shape, axis_names="HW", normalized_anchor=True,
                       normalized_shape=True, fill_value=0.0)
        return img, labels

    p = pipe()
    p.build()
    classes = len([d for d in Path(images).iterdir() if d.is_dir()])
    mix = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=classes)
    return p, mix, torch, np


def dali_epoch(state, count):
    p, mix, torch, np = state
    n = 0
    while n + BATCH <= count:
        images, labels = p.run()
        x = torch.from_numpy(np.array(images.as_tensor()))
        y = torch.from_numpy(np.array(labels.as_tensor()).reshape(-1).astype(np.int64))
        x, soft = mix(x, y)
        n += x.shape[0]
    p.reset()
    return n


def available(module):
    try:
        __import__(module)
        return True
    except Exception:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=480)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--interpolation", choices=("bilinear", "bicubic", "random"), default="bilinear")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.count, args.rounds = 2 * BATCH, 1
    base = ROOT / "target" / ("timm-recipe-bench-smoke" if args.smoke else "timm-recipe-bench")
    images, ds = base / "images", base / "shards"
    corpus(images, args.count)
    if not (ds / "manifest.json").exists():
        import alexpipe

        alexpipe.build_shards(str(images), str(ds), mode="original", progress=False)
    print(f"timm-style recipe (RRC 224 + flip + TrivialAugmentWide + jitter 0.4 + normalise + erasing 0.25 + "
          f"MixUp/CutMix; {args.interpolation} resize), {args.count} JPEGs (short side 300-500 px), batches of {BATCH}, {args.threads} "
          f"threads/workers, {args.rounds} interleaved rounds after a warm-up\n")
    loaders = {}
    for decode in ("crop", "exact"):
        loader = alexpipe_loader(str(ds), decode, args.threads, args.interpolation)
        loaders[f"alexpipe {'crop-aware' if decode == 'crop' else 'exact'}"] = lambda e, l=loader: alexpipe_epoch(l, e)
    peers = ["timm (DataLoader + timm transforms + Mixup)", "DALI CPU, nearest equivalents + timm's Mixup"]
    if available("timm"):
        tl, mix = timm_loader(images, args.threads, args.interpolation)
        loaders[peers[0]] = lambda e: timm_epoch(tl, mix)
    # DALI's resize takes one filter for the pipeline: it has no per-image random choice.
    dali_can = args.interpolation != "random"
    if available("nvidia.dali") and available("timm") and dali_can:
        dali = dali_loader(images, args.threads, args.interpolation)
        loaders[peers[1]] = lambda e: dali_epoch(dali, args.count)
    runs = {name: [] for name in loaders}
    for name, run in loaders.items():
        run(0)  # warm-up: workers started, caches warm
    for r in range(args.rounds):
        for name, run in loaders.items():
            t = time.perf_counter()
            n = run(r + 1)
            runs[name].append(n / (time.perf_counter() - t))
    print(f"| loader | images/s (median of {args.rounds}) |")
    print("|---|---:|")
    for name, rates in runs.items():
        print(f"| {name} | {statistics.median(rates):,.0f} |")
    for peer in peers:
        if peer not in runs:
            why = "no per-image random filter" if peer.startswith("DALI") and not dali_can else "not installed"
            print(f"| {peer} | {why} |")
    ours = max(statistics.median(v) for k, v in runs.items() if k.startswith("alexpipe"))
    theirs = [statistics.median(v) for k, v in runs.items() if not k.startswith("alexpipe")]
    if theirs:
        print(f"\nalexpipe / best peer: {ours / max(theirs):.2f}x")


if __name__ == "__main__":
    main()
