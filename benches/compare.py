"""alexpipe against its peers, side by side, on the same data and cores, in one run.

    benches/compare.sh [--count 2000] [--reps 3] [--epochs 2]     # sets up the peers, runs, writes
                                                                  # BENCHMARKS.md + benchmarks.png
    benches/compare.sh --smoke                                    # seconds-long check that it runs

Data: the real-photo corpus of benches/make_corpus.py (ImageNet-like JPEGs) and its alexpipe shards
(raw and jpeg). Every loader produces batches of 128 random 224×224 crops of the 256×256 images,
mirrored with p = 0.5, but not every loader does the same work on them:

- alexpipe (f32 rows): crop, mirror, the paper's PCA lighting (α ~ N(0, 0.1)) and the mean image
  subtracted, into a contiguous float32 NCHW buffer;
- alexpipe, "peers' work" rows: the same engine configured to do only what DALI and FFCV do:
  crop, mirror, per-channel (x - mean) / std, no lighting, contiguous float32 NCHW;
- PyTorch DataLoader / torchvision (benches/peer_torch.py): the same work as alexpipe, with tensor ops
  (crop, flip, lighting, mean image), contiguous float32 NCHW;
- DALI CPU: crop_mirror_normalize (crop, mirror, per-channel mean/std), contiguous float32 CHW; no
  lighting, no mean image; and DALI CPU, "alexpipe's work" rows: alexpipe's own work built from DALI
  ops — crop and mirror of the image and of the mean image at the same position, the paper's PCA
  lighting (α ~ N(0, 0.1), the RGB shift by coord_transform), the mean image subtracted, CHW;
- FFCV: its decoder's crop, RandomHorizontalFlip, NormalizeImage (per-channel mean/std, float32,
  channels last), then ToTorchImage, which returns an NCHW-shaped *view* of the channels-last
  batch (not a contiguous NCHW copy); no lighting, no mean image;
- "raw u8" group: crop and mirror only, uint8 NHWC, for every loader.

Compare alexpipe's "peers' work" rows with DALI and FFCV, its default rows with PyTorch and with
DALI's "alexpipe's work" rows. The train
path from JPEG uses the same 256 px JPEGs for every loader. Each measurement runs in its own process
(peak RSS is that process tree's), after one warm-up epoch; the loaders are interleaved round by
round (round r runs every loader once, then round r + 1), `--reps` rounds, so a change in the
machine's load hits every loader alike; the table shows the median and the min–max spread.
`--threads N` sets the threads / workers / processes of every loader and of the build path
(default: all cores); the scaling table runs 1..N.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benches"))
sys.path.insert(0, str(ROOT / "tests" / "python"))  # alexpipe_format: the independent shard reader
CORES = os.cpu_count() or 1
BATCH = 128


# ---------------------------------------------------------------- loaders (run in a child process)

def run_alexpipe(shards, epochs, threads, mode, layout="f32", work="paper"):
    import alexpipe

    # work="peers": what DALI's crop_mirror_normalize and FFCV's NormalizeImage do (channel
    # normalisation, no PCA lighting, no mean image).
    extra = dict(mean="channel", lighting=0.0) if work == "peers" else {}
    loader = alexpipe.Loader(shards, batch_size=BATCH, threads=threads,
                             layout="u8_nhwc" if layout == "u8" else "f32_nchw", **extra)
    drain = mode == "rust"

    def epoch(e):
        loader.set_epoch(e)
        if drain:
            return loader.drain_epoch()[0]
        return sum(images.shape[0] for images, _ in loader)

    epoch(10_000)
    t = time.perf_counter()
    n = sum(epoch(e) for e in range(epochs))
    return n, time.perf_counter() - t


def run_torch(corpus, shards, epochs, threads, what):
    out = subprocess.run(
        [sys.executable, ROOT / "benches" / "peer_torch.py", corpus, "--shards", shards, "--what", what,
         "--workers", str(threads), "--epochs", str(epochs), "--batch", str(BATCH)],
        check=True, capture_output=True, text=True)
    r = json.loads(out.stdout)
    return r["images"], r["seconds"]


def run_dali(shards, epochs, threads, source, layout="f32", work="peers"):
    import numpy as np
    from nvidia.dali import fn, pipeline_def, types
    from alexpipe_format import Dataset as Shards

    ds = Shards(shards, check_crc=False)
    mean = [float(v) for v in ds.manifest["stats"]["channel_mean"]]
    std = [float(v) for v in ds.manifest["stats"]["channel_std"]]
    n = len(ds)

    # work="paper": alexpipe's own work, built from DALI ops — the crop and mirror, the paper's PCA
    # lighting (α ~ N(0, 0.1) along the dataset's eigenbasis, the RGB shift added by coord_transform)
    # and the mean image cropped and mirrored with the patch, subtracted; float32 CHW.
    stats = ds.manifest["stats"]
    eigvecs = np.array(stats["eigvecs"], dtype=np.float32)
    axis_std = np.sqrt(np.maximum(np.array(stats["eigvals"], dtype=np.float32), 0))
    mean_image = ds.mean_image.astype(np.float32)

    def mean_images(_):
        return [mean_image] * BATCH

    @pipeline_def(batch_size=BATCH, num_threads=threads, device_id=None, seed=0, prefetch_queue_depth=2)
    def pipe():
        if source == "jpeg":
            folder = Path(str(shards) + "-jpeg256")
            jpegs, labels = fn.readers.file(file_root=str(folder), random_shuffle=True, name="r")
            images = fn.decoders.image(jpegs, device="cpu", output_type=types.RGB)
        else:
            images, labels = fn.external_source(source=raw_batches, num_outputs=2, batch=True)
        crop = dict(crop=(224, 224), crop_pos_x=fn.random.uniform(range=(0.0, 1.0)),
                    crop_pos_y=fn.random.uniform(range=(0.0, 1.0)), mirror=fn.random.coin_flip(probability=0.5))
        if layout == "u8":
            return fn.crop_mirror_normalize(images, dtype=types.UINT8, output_layout="HWC", **crop), labels
        if work == "paper":
            means = fn.external_source(source=mean_images, batch=True)
            patch = fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="HWC", **crop)
            mean_patch = fn.crop_mirror_normalize(means, dtype=types.FLOAT, output_layout="HWC", **crop)
            alpha = fn.random.normal(shape=[1, 3], stddev=0.1)  # one "point": coord_transform wants 2-D
            shift = fn.coord_transform(alpha * types.Constant(axis_std.reshape(1, 3)), M=eigvecs.flatten().tolist())
            lit = fn.coord_transform(patch, T=fn.reshape(shift, shape=[3]))
            return fn.transpose(lit - mean_patch, perm=[2, 0, 1]), labels
        return fn.crop_mirror_normalize(images, mean=mean, std=std, dtype=types.FLOAT, output_layout="CHW",
                                        **crop), labels

    if source == "raw":
        pixels = np.stack([ds.pixels(i)[0] for i in range(n)])
        labels_all = np.array([ds.records[i][0] for i in range(n)], dtype=np.int64)

        def raw_batches(iteration):
            rng = np.random.default_rng(iteration)
            idx = rng.integers(0, n, BATCH)
            return [pixels[i] for i in idx], [labels_all[i:i + 1] for i in idx]

    p = pipe()
    p.build()
    if work == "paper":
        # The same work as alexpipe's, checked: centred by the mean image, spread by the pixels.
        first = np.array(p.run()[0].as_tensor())
        assert first.shape == (BATCH, 3, 224, 224), first.shape
        assert abs(first.mean()) < 20 and 20 < first.std() < 120, (first.mean(), first.std())
    per_epoch = n // BATCH
    for _ in range(per_epoch):
        p.run()
    t = time.perf_counter()
    for _ in range(per_epoch * epochs):
        p.run()
    return per_epoch * epochs * BATCH, time.perf_counter() - t


def run_ffcv(shards, epochs, threads, source, layout="f32"):
    import numpy as np
    import torch
    from ffcv.fields import IntField, RGBImageField
    from ffcv.fields.decoders import IntDecoder, RandomResizedCropRGBImageDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import NormalizeImage, RandomHorizontalFlip, ToTensor, ToTorchImage
    from ffcv.writer import DatasetWriter
    from alexpipe_format import Dataset as Shards

    ds = Shards(shards, check_crc=False)
    beton = Path(str(shards) + f"-{source}.beton")
    if not beton.exists():
        class Items:
            def __len__(self):
                return len(ds)

            def __getitem__(self, i):
                return ds.pixels(i)[0], ds.records[i][0]

        mode = "raw" if source == "raw" else "jpg"
        writer = DatasetWriter(str(beton), {"image": RGBImageField(write_mode=mode, jpeg_quality=90),
                                            "label": IntField()}, num_workers=threads)
        writer.from_indexed_dataset(Items())
    stats = ds.manifest["stats"]
    side = 224 / 256  # an exact 224 crop: RandomResizedCrop with the area and aspect of 224/256, no resize
    # Jitted ops first, then the torch conversions: FFCV 1.0.2's pipeline compiler loops forever when a
    # jitted op (NormalizeImage) follows a non-jitted one (ToTensor), as in its GPU examples' order.
    pipeline = [RandomResizedCropRGBImageDecoder((224, 224), scale=(side * side, side * side), ratio=(1.0, 1.0)),
                RandomHorizontalFlip()]
    if layout == "u8":
        pipeline += [ToTensor()]
    else:
        pipeline += [NormalizeImage(np.array(stats["channel_mean"]), np.array(stats["channel_std"]), np.float32),
                     ToTensor(), ToTorchImage()]
    loader = Loader(str(beton), batch_size=BATCH, num_workers=threads, order=OrderOption.RANDOM, drop_last=True,
                    pipelines={"image": pipeline, "label": [IntDecoder(), ToTensor()]})
    for _ in loader:
        pass
    n, t = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _ in loader:
            n += x.shape[0]
    return n, time.perf_counter() - t


def child(args):
    kind, *rest = args.run.split(":")
    shards, corpus = Path(args.shards), Path(args.corpus)
    if kind == "alexpipe":
        n, s = run_alexpipe(shards, args.epochs, args.threads, *rest)
    elif kind == "torch":
        n, s = run_torch(corpus, shards, args.epochs, args.threads, rest[0])
    elif kind == "dali":
        n, s = run_dali(shards, args.epochs, args.threads, *rest)
    elif kind == "ffcv":
        n, s = run_ffcv(shards, args.epochs, args.threads, *rest)
    else:
        raise SystemExit(f"unknown loader {kind}")
    # Peak resident memory of this process and of the children it waited for (DataLoader workers).
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"images": n, "seconds": s, "images_per_s": n / s, "peak_rss_mib": peak / 1024}))


# ---------------------------------------------------------------- orchestration

def measure(spec, shards, corpus, epochs, threads, timeout):
    """images/s and peak RSS (MiB, the largest process of the child's tree) of one run, or the error."""
    try:
        proc = subprocess.run([sys.executable, __file__, "--run", spec, "--shards", shards, "--corpus", corpus,
                               "--epochs", str(epochs), "--threads", str(threads)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, 0.0, f"no result within {timeout} s (hung or far too slow)"
    if proc.returncode != 0:
        return None, 0.0, (proc.stderr.strip().splitlines() or ["failed"])[-1]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["images_per_s"], result["peak_rss_mib"], None


def versions():
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "nvidia-dali-cuda120", "ffcv", "numpy", "pillow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["alexpipe"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip()
    return out


def machine():
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    return f"{model}, {CORES} cores, {mem / 2**20:.0f} GiB RAM, {platform.system()} {platform.release()}"



def opens(shards: Path) -> bool:
    """True when this alexpipe opens the dataset (a cached build from an older format is rebuilt)."""
    import alexpipe

    try:
        alexpipe.Dataset(shards)
        return True
    except (OSError, ValueError, alexpipe.AlexpipeError):
        return False

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--shards", default="")
    ap.add_argument("--corpus", default="")
    ap.add_argument("--threads", type=int, default=CORES)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=900, help="seconds allowed per run of one loader")
    ap.add_argument("--smoke", action="store_true", help="tiny corpus, one rep: checks the script runs")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args()
    if args.run:
        return child(args)
    if args.smoke:
        # One batch of 128 per epoch; a check that every row runs, not a measurement.
        args.count, args.reps, args.epochs, args.timeout = 160, 1, 1, 240
        args.out = ROOT / "target" / "BENCHMARKS-smoke.md"
    threads = max(1, args.threads)
    venv_python = ROOT / ".venv" / "bin" / "python"
    corpus = ROOT / "target" / f"compare-corpus-{args.count}"
    subprocess.run([venv_python, ROOT / "benches" / "make_corpus.py", corpus, "--count", str(args.count)], check=True)
    build_shards = ROOT / "target" / "release" / "build-shards"
    shards = {}
    for mode in ("raw", "jpeg"):
        shards[mode] = ROOT / "target" / f"compare-shards-{mode}-{args.count}"
        if not opens(shards[mode]):
            subprocess.run([build_shards, "-q", corpus, shards[mode], "--mode", mode], check=True,
                           stdout=subprocess.DEVNULL)
    # The 256 px JPEGs every JPEG-path loader reads (written once by peer_torch.py's folder256 mode).
    if not Path(str(shards["raw"]) + "-jpeg256").exists():
        run_torch(corpus, shards["raw"], 1, threads, "folder256-f32")

    rows = []  # (group, name, spec, shards, threads)
    for t in range(1, threads + 1):
        rows.append(("scaling", f"alexpipe engine, {t} thread{'s' if t > 1 else ''}", "alexpipe:rust", "raw", t))
    rows += [(group, name, spec, mode, threads) for group, name, spec, mode in [
        ("raw", "alexpipe engine (Rust)", "alexpipe:rust", "raw"),
        ("raw", "alexpipe Loader (Python)", "alexpipe:python", "raw"),
        ("raw", "alexpipe engine (Rust), peers' work", "alexpipe:rust:f32:peers", "raw"),
        ("raw", "PyTorch DataLoader (pre-decoded array)", "torch:array-f32", "raw"),
        ("raw", "DALI CPU (external_source)", "dali:raw", "raw"),
        ("raw", "DALI CPU (external_source), alexpipe's work", "dali:raw:f32:paper", "raw"),
        ("raw", "FFCV (raw .beton)", "ffcv:raw", "raw"),
        ("raw u8", "alexpipe engine (Rust)", "alexpipe:rust:u8", "raw"),
        ("raw u8", "alexpipe Loader (Python)", "alexpipe:python:u8", "raw"),
        ("raw u8", "PyTorch DataLoader (pre-decoded array)", "torch:array-u8", "raw"),
        ("raw u8", "DALI CPU (external_source)", "dali:raw:u8", "raw"),
        ("raw u8", "FFCV (raw .beton)", "ffcv:raw:u8", "raw"),
        ("jpeg", "alexpipe Loader (jpeg shards)", "alexpipe:python", "jpeg"),
        ("jpeg", "alexpipe Loader (jpeg shards), peers' work", "alexpipe:python:f32:peers", "jpeg"),
        ("jpeg", "torchvision ImageFolder", "torch:folder256-f32", "raw"),
        ("jpeg", "DALI CPU (readers.file + decoders.image)", "dali:jpeg", "raw"),
        ("jpeg", "DALI CPU (readers.file + decoders.image), alexpipe's work", "dali:jpeg:f32:paper", "raw"),
        ("jpeg", "FFCV (jpg .beton)", "ffcv:jpeg", "raw"),
    ]]
    # Interleaved: round r runs every loader once, then round r + 1 (a loader that failed is not
    # retried), so drift in the machine's load biases no ratio.
    measured = [([], 0.0, None) for _ in rows]
    for r in range(args.reps):
        for k, (group, name, spec, mode, t) in enumerate(rows):
            rates, rss, err = measured[k]
            if err is not None:
                continue
            rate, peak, err = measure(spec, shards[mode], corpus, args.epochs, t, args.timeout)
            if rate is not None:
                rates.append(rate)
            measured[k] = (rates, max(rss, peak), err)
            shown = f"{rate:.0f} img/s" if rate is not None else f"failed: {err}"
            print(f"round {r + 1}/{args.reps} {group:8} {name:45} {shown}", flush=True)
    results = [(group, name, rates, rss, err) for (group, name, *_), (rates, rss, err) in zip(rows, measured)]
    if args.smoke:
        # A smoke fails on any loader that broke; a peer that is not installed (DALI and FFCV live in
        # the peers venv of benches/setup_peers.sh) is only reported.
        optional = ("No module named 'nvidia", "No module named 'ffcv")
        broken = [(name, err) for _, name, _, _, err in results if err and not any(o in err for o in optional)]
        for name, err in broken:
            print(f"smoke: {name} failed: {err}", file=sys.stderr)
        if broken:
            raise SystemExit(1)

    # Build path: build-shards against PIL over the same files and cores.
    files = sorted(str(p) for p in corpus.rglob("*.jpg"))
    listing = ROOT / "target" / f"compare-files-{args.count}.txt"
    listing.write_text("\n".join(files) + "\n")
    build_rates, pil_rates = [], []
    for _ in range(args.reps):
        t = time.perf_counter()
        subprocess.run([build_shards, "-q", corpus, ROOT / "target" / "compare-build-tmp", "--threads", str(threads)],
                       check=True, stdout=subprocess.DEVNULL)
        build_rates.append(len(files) / (time.perf_counter() - t))
        out = subprocess.run([venv_python, ROOT / "benches" / "pil_build.py", listing, "--procs", str(threads)],
                             check=True, capture_output=True, text=True)
        pil_rates.append(json.loads(out.stdout)["images_per_s"])
    write_report(args, threads, results, build_rates, pil_rates)


def write_report(args, threads, results, build_rates, pil_rates):
    def cell(rates):
        if not rates:
            return "—"
        return f"{statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f})"

    base = {g: statistics.median(r) for g, n, r, _, _ in results
            if r and n.startswith(("PyTorch DataLoader", "torchvision ImageFolder"))}
    lines = [
        "# Benchmarks: alexpipe and its peers",
        "",
        f"Made by `benches/compare.sh` (`{' '.join(sys.argv[1:]) or 'defaults'}`): {args.count} real-photo JPEGs "
        f"(`benches/make_corpus.py`), batches of {BATCH} random 224×224 crops of the 256×256 images, mirrored; "
        f"{threads} threads / workers per loader; {args.epochs} epochs per run after a warm-up epoch, {args.reps} "
        "rounds, each running every loader once in turn (interleaved, so load drift hits all alike); median "
        "(min–max) images/s. Ratios are against the PyTorch DataLoader row of the same group. Peak RSS is the largest "
        "process of the run (its waited-for children included, e.g. DataLoader workers); alexpipe reads "
        "shards with pread, so its shards stay in the page cache and out of its RSS; FFCV's RSS includes the "
        "pages of the memory-mapped .beton it touched.",
        "",
        "Work per image (f32 rows): alexpipe's default rows and PyTorch do the paper's recipe (crop, mirror, PCA "
        "lighting, mean image subtracted, contiguous float32 NCHW). DALI (crop_mirror_normalize) and FFCV "
        "(NormalizeImage) do crop, mirror and per-channel mean/std only, no lighting and no mean image; FFCV's "
        "NCHW batch is a view of a channels-last buffer (ToTorchImage), not a contiguous NCHW copy. The rows "
        "marked \"peers' work\" are alexpipe configured to do only what DALI and FFCV do (channel "
        "normalisation, no lighting): compare those with DALI and FFCV. The DALI rows marked \"alexpipe's "
        "work\" are DALI doing alexpipe's default work with its own ops (crop and mirror of the image and of "
        "the mean image at the same position, PCA lighting through coord_transform, the mean image "
        "subtracted, CHW): compare those with alexpipe's default rows. The raw u8 group is crop and mirror "
        "for every loader.",
        "",
        f"Machine: {machine()}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".",
        "",
        "| path | loader | images/s | vs PyTorch | peak RSS |",
        "|---|---|---|---|---|",
    ]
    for group, name, rates, rss, err in results:
        if group == "scaling":
            continue
        ratio = f"{statistics.median(rates) / base[group]:.1f}×" if rates and group in base else "—"
        shown = cell(rates) if rates else f"did not run: {err}"
        lines.append(f"| {group} | {name} | {shown} | {ratio} | {rss:,.0f} MiB |")
    lines += ["", "Scaling of the engine (raw shards, the Rust loop):", "", "| threads | images/s | efficiency |",
              "|---|---|---|"]
    one = None
    for group, name, rates, _, _ in results:
        if group == "scaling" and rates:
            t = int(name.split(",")[1].split()[0])
            one = one or statistics.median(rates)
            lines.append(f"| {t} | {cell(rates)} | {statistics.median(rates) / (one * t):.0%} |")
    ratio = statistics.median(build_rates) / statistics.median(pil_rates)
    lines += ["", f"Build path (decode + resize 256 + centre crop, {threads} threads / processes): build-shards "
              f"{cell(build_rates)} images/s (writing shards and statistics included) vs PIL {cell(pil_rates)} "
              f"images/s: {ratio:.1f}×.", "", "![images/s](benchmarks.png)", ""]
    args.out.write_text("\n".join(lines))
    try:
        chart(results, args.out.with_name("benchmarks.png"), threads)
    except ImportError:
        if not args.smoke:
            raise
        print("smoke: no matplotlib here, chart not drawn (benches/setup_peers.sh installs it)")
    print(f"wrote {args.out}")


def chart(results, path, threads):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f"{g}: {n}", statistics.median(r)) for g, n, r, _, _ in results if r and g != "scaling"]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1))
    # alexpipe's own rows in red; a peer's rows grey, also those doing alexpipe's work.
    colors = ["#d62728" if n.split(": ", 1)[1].startswith("alexpipe") else "#7f7f7f" for n, _ in rows]
    ax.barh([n for n, _ in rows][::-1], [v for _, v in rows][::-1], color=colors[::-1])
    ax.set_xlabel("images/s (higher is better)")
    ax.set_title(f"Training batches, {threads} threads per loader")
    for i, (_, v) in enumerate(rows[::-1]):
        ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
