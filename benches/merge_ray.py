"""A build spread over Ray tasks and merged, against the same build in one go, same run.

    .venv/bin/python benches/merge_ray.py [--count 2000] [--parts 4] [--reps 3] [--shard-size 256]
    .venv/bin/python benches/merge_ray.py --smoke      # seconds: 24 photos, 2 parts, once

The corpus is benches/make_corpus.py's (real-photo JPEGs at ImageNet-like sizes, 300-500 px short
side). Rows, each the median of --reps runs (raw records, 256 px, all cores):

- one go: `build_shards(corpus, out)` with every core;
- N parts on Ray: `alexpipe.distributed.build_on_ray(corpus, out, parts=N)`, N tasks of one CPU
  each on a local Ray cluster of every core (started once, before timing: a cluster is up before a
  job is submitted to it), the parts then merged; reported with the merge's own time (which reads
  and writes the records' bytes once, decoding nothing) and the total against one go.

The merged dataset is checked byte-identical to the one-go build (the manifest after its time)
before any number is printed. Numbers on a shared 2-core machine are noisy.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def same_dataset(a, b):
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    for name in names:
        x, y = (a / name).read_bytes(), (b / name).read_bytes()
        if name == "manifest.json":
            x, y = json.loads(x), json.loads(y)
            for m in (x, y):
                del m["manifest_crc32c"], m["build"]["created_unix"]
        if x != y:
            return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--parts", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--shard-size", type=int, default=256)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.count, args.parts, args.reps, args.shard_size = 24, 2, 1, 4
    import alexpipe
    import ray
    from alexpipe.distributed import build_on_ray

    base = ROOT / "target" / ("merge-bench-smoke" if args.smoke else "merge-bench")
    corpus = base / "corpus"
    subprocess.run(
        [sys.executable, str(ROOT / "benches" / "make_corpus.py"), str(corpus), "--count", str(args.count)],
        check=True, stdout=subprocess.DEVNULL,
    )
    cores = os.cpu_count() or 1
    t = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t
    one_go, ray_total, merge_own = [], [], []
    try:
        for _ in range(args.reps):
            for d in (base / "one-go", base / "merged"):
                shutil.rmtree(d, ignore_errors=True)
            t = time.perf_counter()
            alexpipe.build_shards(str(corpus), str(base / "one-go"), shard_size=args.shard_size, progress=False)
            one_go.append(time.perf_counter() - t)
            t = time.perf_counter()
            s = build_on_ray(corpus, base / "merged", parts=args.parts, shard_size=args.shard_size)
            ray_total.append(time.perf_counter() - t)
            merge_own.append(s["elapsed_secs"])
            assert same_dataset(base / "merged", base / "one-go"), "the merge differs from the one-go build"
    finally:
        ray.shutdown()
    med = statistics.median
    print(f"{args.count} photos -> raw 256 px shards of {args.shard_size}, {cores} cores, median of {args.reps}; "
          f"Ray cluster start {ray_start:.1f} s (not counted)")
    print(f"  one go, {cores} threads:                {med(one_go):7.2f} s")
    print(f"  {args.parts} parts on Ray + merge:          {med(ray_total):7.2f} s  ({med(ray_total) / med(one_go):.2f}x one go)")
    print(f"    of which the merge:                {med(merge_own):7.2f} s  ({100 * med(merge_own) / med(one_go):.1f} % of one go; "
          f"{s['shards_linked']} shards linked, {s['shards_copied']} copied, {s['records_repacked']} records re-packed)")
    print("  merged dataset byte-identical to the one-go build: yes")


if __name__ == "__main__":
    main()
