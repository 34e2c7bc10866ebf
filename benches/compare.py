"""alexpipe against its peers, side by side, on the same data and cores, in one run.

    benches/compare.sh [--count 2000] [--reps 3] [--epochs 2]     # sets up the peers, runs, writes
                                                                  # BENCHMARKS.md + benchmarks.png
    benches/compare.sh --smoke                                    # seconds-long check that it runs

Data: the real-photo corpus of benches/make_corpus.py (ImageNet-like JPEGs) and its alexpipe shards
(raw and jpeg). Every loader produces the same training batches: 128 random 224×224 crops of the
256×256 images, mirrored with p = 0.5, as float32 NCHW (normalised), or as uint8 NHWC (crop and
mirror only) in the "raw u8" group — for f32, alexpipe also adds the
paper's PCA lighting and subtracts the mean image, the peers do what their built-in ops offer (DALI:
crop_mirror_normalize; FFCV: its decoder + flip + normalise); the train path from JPEG uses the same
256 px JPEGs for every loader. Each measurement runs in its own process (peak RSS is that process
tree's), after one warm-up epoch, `--reps` times; the table shows the median and the min–max spread.
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

def run_alexpipe(shards, epochs, threads, mode, layout="f32"):
    import alexpipe

    loader = alexpipe.Loader(shards, batch_size=BATCH, threads=threads, layout="u8_nhwc" if layout == "u8" else "f32_nchw")
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


def run_dali(shards, epochs, threads, source, layout="f32"):
    import numpy as np
    from nvidia.dali import fn, pipeline_def, types
    from alexpipe_format import Dataset as Shards

    ds = Shards(shards, check_crc=False)
    mean = [float(v) for v in ds.manifest["stats"]["channel_mean"]]
    std = [float(v) for v in ds.manifest["stats"]["channel_std"]]
    n = len(ds)

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
        args.count, args.reps, args.epochs, args.timeout = 300, 1, 1, 240
        args.out = ROOT / "target" / "BENCHMARKS-smoke.md"
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
        run_torch(corpus, shards["raw"], 1, CORES, "folder256-f32")

    rows = []  # (group, name, spec, shards, threads)
    for t in range(1, CORES + 1):
        rows.append(("scaling", f"alexpipe engine, {t} thread{'s' if t > 1 else ''}", "alexpipe:rust", "raw", t))
    rows += [
        ("raw", "alexpipe engine (Rust)", "alexpipe:rust", "raw", CORES),
        ("raw", "alexpipe Loader (Python)", "alexpipe:python", "raw", CORES),
        ("raw", "PyTorch DataLoader (pre-decoded array)", "torch:array-f32", "raw", CORES),
        ("raw", "DALI CPU (external_source)", "dali:raw", "raw", CORES),
        ("raw", "FFCV (raw .beton)", "ffcv:raw", "raw", CORES),
        ("raw u8", "alexpipe engine (Rust)", "alexpipe:rust:u8", "raw", CORES),
        ("raw u8", "alexpipe Loader (Python)", "alexpipe:python:u8", "raw", CORES),
        ("raw u8", "PyTorch DataLoader (pre-decoded array)", "torch:array-u8", "raw", CORES),
        ("raw u8", "DALI CPU (external_source)", "dali:raw:u8", "raw", CORES),
        ("raw u8", "FFCV (raw .beton)", "ffcv:raw:u8", "raw", CORES),
        ("jpeg", "alexpipe Loader (jpeg shards)", "alexpipe:python", "jpeg", CORES),
        ("jpeg", "torchvision ImageFolder", "torch:folder256-f32", "raw", CORES),
        ("jpeg", "DALI CPU (readers.file + decoders.image)", "dali:jpeg", "raw", CORES),
        ("jpeg", "FFCV (jpg .beton)", "ffcv:jpeg", "raw", CORES),
    ]
    results = []
    for group, name, spec, mode, threads in rows:
        rates, rss, err = [], 0.0, None
        for _ in range(args.reps):
            rate, peak, err = measure(spec, shards[mode], corpus, args.epochs, threads, args.timeout)
            rss = max(rss, peak)
            if rate is None:
                break
            rates.append(rate)
        results.append((group, name, rates, rss, err))
        shown = f"{statistics.median(rates):.0f} img/s" if rates else f"failed: {err}"
        print(f"{group:8} {name:45} {shown}", flush=True)

    # Build path: build-shards against PIL over the same files and cores.
    files = sorted(str(p) for p in corpus.rglob("*.jpg"))
    listing = ROOT / "target" / f"compare-files-{args.count}.txt"
    listing.write_text("\n".join(files) + "\n")
    build_rates, pil_rates = [], []
    for _ in range(args.reps):
        t = time.perf_counter()
        subprocess.run([build_shards, "-q", corpus, ROOT / "target" / "compare-build-tmp"], check=True,
                       stdout=subprocess.DEVNULL)
        build_rates.append(len(files) / (time.perf_counter() - t))
        out = subprocess.run([venv_python, ROOT / "benches" / "pil_build.py", listing, "--procs", str(CORES)],
                             check=True, capture_output=True, text=True)
        pil_rates.append(json.loads(out.stdout)["images_per_s"])
    write_report(args, results, build_rates, pil_rates)


def write_report(args, results, build_rates, pil_rates):
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
        f"(`benches/make_corpus.py`), batches of {BATCH} random 224×224 crops of the 256×256 images, mirrored, "
        f"float32 NCHW; {args.epochs} epochs per run after a warm-up epoch, {args.reps} runs; median (min–max) "
        "images/s. Ratios are against the PyTorch DataLoader row of the same group. Peak RSS is the largest "
        "process of the run (its waited-for children included, e.g. DataLoader workers); alexpipe reads "
        "shards with pread, so its shards stay in the page cache and out of its RSS; FFCV's RSS includes the "
        "pages of the memory-mapped .beton it touched.",
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
    lines += ["", f"Build path (decode + resize 256 + centre crop, {CORES} cores): build-shards "
              f"{cell(build_rates)} images/s (writing shards and statistics included) vs PIL {cell(pil_rates)} "
              f"images/s: {ratio:.1f}×.", "", "![images/s](benchmarks.png)", ""]
    args.out.write_text("\n".join(lines))
    chart(results, args.out.with_name("benchmarks.png"))
    print(f"wrote {args.out}")


def chart(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f"{g}: {n}", statistics.median(r)) for g, n, r, _, _ in results if r and g != "scaling"]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1))
    colors = ["#d62728" if "alexpipe" in n else "#7f7f7f" for n, _ in rows]
    ax.barh([n for n, _ in rows][::-1], [v for _, v in rows][::-1], color=colors[::-1])
    ax.set_xlabel("images/s (higher is better)")
    ax.set_title(f"Training batches, {CORES} CPU cores")
    for i, (_, v) in enumerate(rows[::-1]):
        ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
