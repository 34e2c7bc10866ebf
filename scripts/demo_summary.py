#!/usr/bin/env python3
"""The main job's closing summary (scripts/demo.sh): what a user wants to know at the end of a run.

Usage: demo_summary.py RUN_DIR TRAIN_SHARDS VAL_SHARDS

Reads RUN_DIR/metrics.jsonl (written by `train`), measures the engine alone on TRAIN_SHARDS with
the run's input recipe (the Python package's Loader, drained inside Rust), and prints accuracy,
engine vs step images/s, data wait, where the checkpoint, metrics and pictures are, and what to
try next.
"""
import json
import pathlib
import sys

import alexpipe


def main() -> None:
    run, shards, val = (pathlib.Path(a) for a in sys.argv[1:4])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    if not rows:
        sys.exit(f"{run}/metrics.jsonl has no epochs: the run did not finish one")
    best = min(rows, key=lambda r: r["val_top1_err"])
    last = rows[-1]
    classes = alexpipe.Dataset(shards).classes
    crop = 64 if alexpipe.Dataset(shards).size <= 96 else 224
    # The engine alone: the same patches, mirrors, lighting and normalisation, nothing consuming.
    loader = alexpipe.Loader(shards, batch_size=128, crop=crop, mean="channel")
    images, seconds = loader.drain_epoch()
    engine = images / seconds
    step = last["images_per_s"]
    lines = [
        "",
        f"== {run.name}: {len(rows)} epochs, {len(classes)} classes",
        f"held-out accuracy: {100 - best['val_top1_err']:.2f} % top-1 (best, epoch {best['epoch']}); "
        f"last epoch {100 - last['val_top1_err']:.2f} %"
        + (f", top-5 {100 - last['val_top5_err']:.2f} %" if last.get("val_top5_err") is not None else
           " (top-5 not reported: with 5 classes or fewer every label is among the top 5)"),
        f"training loss {rows[0]['train_loss']:.3f} after epoch 1 -> {last['train_loss']:.3f} after epoch {last['epoch']}",
        f"speed: the engine alone serves {engine:,.0f} images/s; training ran at {step:,.0f} images/s "
        f"with {last['data_wait_pct']:.1f} % of the time waiting for data "
        + ("(the step is the bottleneck, not the data)" if last["data_wait_pct"] < 5 else "(data-bound)"),
        f"checkpoint: {run / 'best.ot'} (best), {run / 'checkpoint.ot'} (last)",
        f"metrics:    {run / 'metrics.jsonl'}, {run / 'metrics.csv'}",
        f"pictures:   {run / 'curves.png'}, {run / 'conv1.png'}, {run / 'neighbours.png'}",
        "next:",
        f"  evaluate with the paper's 10 patches: cargo run --release --bin train -- --eval {run / 'best.ot'} --val {val} --ten-crop",
        f"  train more epochs from the last one:  cargo run --release --bin train -- --resume {run / 'checkpoint.ot'} --epochs N (same options)",
        f"  the same shards from Python/PyTorch:  python -c \"from alexpipe.torch import TorchLoader; "
        f"print(next(iter(TorchLoader('{shards}', crop={crop}, mean='channel')))[0].shape)\"",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
