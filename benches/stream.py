"""Streaming benchmark (issue 19): epoch throughput of alexpipe's loader over raw and jpeg shards
read from local disk, from nginx on 127.0.0.1 through a cold cache (every shard fetched during
the epoch) and a warm one (the second epoch, every shard cached), beside WebDataset's own loader
(webdataset.WebDataset + torch DataLoader workers) reading the same JPEG records as tars from the
same nginx — in one run, on this machine.

Every loader does the paper's training work on 256-px images: a random 224 crop, a mirror with
p = 0.5, float32 CHW batches of 128 (alexpipe adds PCA lighting and the mean image; WebDataset's
pipeline the crop, flip and a channel normalisation), with as many workers as cores. alexpipe reads
in its shard-aware order (shards shuffled, records mixed within windows of 4 shards); WebDataset
shuffles its shards and a 1,000-sample buffer.

Goals: warm cache >= 95 % of local disk; cold cache >= 3x WebDataset.

    .venv/bin/python benches/stream.py [--count 2000] [--reps 3]
    .venv/bin/python benches/stream.py --smoke     # seconds: checks that it runs
"""

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
from servers import nginx, requests_for  # noqa: E402

BIN = ROOT / "target" / "release" / "build-shards"
CORES = os.cpu_count() or 2
BATCH = 128
SHARD_SIZE = 256


def build(corpus, out, mode, size, shard_size):
    if not (out / "manifest.json").exists():
        subprocess.run([str(BIN), "--quiet", str(corpus), str(out), "--size", str(size), "--mode", mode,
                        "--shard-size", str(shard_size)], check=True, stdout=subprocess.DEVNULL)


def write_tars(jpeg_ds, out, per_tar):
    """The jpeg dataset's own JPEG records (the same bytes alexpipe decodes) as WebDataset tars."""
    import webdataset as wds
    from alexpipe_format import Dataset

    if out.exists():
        return sorted(p.name for p in out.glob("*.tar"))
    out.mkdir(parents=True)
    records = Dataset(jpeg_ds).records
    with wds.ShardWriter(str(out / "shard-%06d.tar"), maxcount=per_tar, verbose=0) as sink:
        for i, (label, jpg) in enumerate(records):
            sink.write({"__key__": f"{i:08d}", "jpg": jpg, "cls": str(label).encode()})
    return sorted(p.name for p in out.glob("*.tar"))


def alexpipe_epochs(source, epochs, crop, batch, **remote):
    """Images per second of each epoch of one loader (epoch 0 first)."""
    import alexpipe

    loader = alexpipe.Loader(source, batch_size=batch, crop=crop, threads=CORES, order="shards", shard_window=4, **remote)
    rates = []
    for e in range(epochs):
        loader.set_epoch(e)
        n, seconds = loader.drain_epoch()
        rates.append(n / seconds)
    return rates


def webdataset_epoch(urls, size, crop, batch):
    import numpy as np
    import torch
    import webdataset as wds

    rng = np.random.default_rng(0)
    mean = np.array([0.485, 0.456, 0.406], np.float32) * 255
    std = np.array([0.229, 0.224, 0.225], np.float32) * 255

    def augment(img):
        a = np.asarray(img)
        x, y = rng.integers(0, size - crop + 1, 2)
        a = a[y : y + crop, x : x + crop]
        if rng.random() < 0.5:
            a = a[:, ::-1]
        return torch.from_numpy(((a - mean) / std).transpose(2, 0, 1).copy())

    ds = (wds.WebDataset(urls, shardshuffle=len(urls), nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker, empty_check=False)
          .shuffle(1000).decode("pil").to_tuple("jpg", "cls").map_tuple(augment, int).batched(batch, partial=True))
    loader = wds.WebLoader(ds, batch_size=None, num_workers=CORES)
    t = time.perf_counter()
    n = sum(images.shape[0] for images, _ in loader)
    return n / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    size, crop, shard_size, batch = 256, 224, SHARD_SIZE, BATCH
    if args.smoke:
        args.count, args.reps, size, crop, shard_size, batch = 64, 1, 64, 56, 16, 16
    work = ROOT / "target" / ("stream-bench-smoke" if args.smoke else "stream-bench")
    corpus = work / "corpus"
    subprocess.run([sys.executable, str(ROOT / "benches" / "make_corpus.py"), str(corpus), "--count", str(args.count)],
                   check=True, stdout=subprocess.DEVNULL)
    www = work / "www"
    for mode in ("raw", "jpeg"):
        build(corpus, www / mode, mode, size, shard_size)
    tars = write_tars(www / "jpeg", www / "tars", shard_size)
    results = {}
    with tempfile.TemporaryDirectory() as tmp, nginx(www, Path(tmp) / "nginx") as (base, log):
        for mode in ("raw", "jpeg"):
            local, cold, warm = [], [], []
            for rep in range(args.reps):
                local.append(alexpipe_epochs(str(www / mode), 2, crop, batch)[1])
                cache = Path(tmp) / f"cache-{mode}-{rep}"
                before = requests_for(log, f"/{mode}/shard-")
                c, w = alexpipe_epochs(f"{base}/{mode}/", 2, crop, batch, cache_dir=str(cache))
                fetched = requests_for(log, f"/{mode}/shard-") - before
                cold.append(c)
                warm.append(w)
                shutil.rmtree(cache)
            results[mode] = (max(local), max(cold), max(warm), fetched)
        urls = [f"{base}/tars/{t}" for t in tars]
        wds_rates = [webdataset_epoch(urls, size, crop, batch) for _ in range(args.reps)]
    wds_best = max(wds_rates)
    print(f"streaming benchmark: {args.count} images, {size} px, crop {crop}, "
          f"batches of {batch}, {CORES} threads/workers, best of {args.reps}; nginx on 127.0.0.1")
    print(f"{'':>6} {'local':>10} {'cold':>10} {'warm':>10} {'warm/local':>11} {'cold/WDS':>9}  shard GETs/2 epochs")
    for mode, (local, cold, warm, fetched) in results.items():
        print(f"{mode:>6} {local:>10.0f} {cold:>10.0f} {warm:>10.0f} {warm / local:>10.1%} {cold / wds_best:>8.2f}x  {fetched}")
    print(f"WebDataset (jpeg tars over nginx): {wds_best:.0f} images/s")
    for mode, (local, cold, warm, fetched) in results.items():
        shards = len(list((www / mode).glob("shard-*")))
        assert fetched == shards, f"{mode}: {fetched} shard requests for {shards} shards over two epochs: the warm epoch was not served from the cache"


if __name__ == "__main__":
    main()
