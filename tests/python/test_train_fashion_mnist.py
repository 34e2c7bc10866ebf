"""Does it learn? Real labelled images (Fashion-MNIST from Debian's dataset-fashion-mnist) through
build-shards, the engine with the paper's augmentations at a scaled patch (random 64×64 crops of
72×72 records, mirrors, PCA lighting) and a ⅛-width AlexNet on the CPU (He initialization on
channel-normalised inputs: the paper's N(0, 0.01) does not train so narrow a network), 6 epochs with
the learning rate divided by 10 after the 4th. ≈ 2 minutes on 2 cores."""
import json
import os
import subprocess
import sys
import time

import alexpipe
from conftest import ROOT, run_build

TRAIN = ROOT / "target" / "release" / "train"
CACHE = ROOT / "target" / "fashion-mnist"


def dataset(split: str):
    """The split as 72×72 shards, built once and reused while this alexpipe opens them."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "fashion_mnist.py"), str(CACHE / "png")], check=True)
    out = CACHE / f"{split}-72"
    try:
        alexpipe.Dataset(out)
    except (OSError, ValueError, alexpipe.AlexpipeError):
        run_build(CACHE / "png" / split, out, "--size", "72")
    return out


def test_small_alexnet_reaches_85_percent_on_fashion_mnist(tmp_path):
    train, test = dataset("train"), dataset("test")
    run = tmp_path / "run"
    args = [str(TRAIN), "--train", str(train), "--val", str(test), "--out", str(run),
            "--crop", "64", "--width", "0.125", "--epochs", "6", "--lr-drop-after", "4",
            "--batch-size", "128", "--lr", "0.02", "--init", "kaiming", "--normalize", "channel",
            "--bias-init", "caffe", "--device", "cpu", "--quiet"]
    start = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=1500)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["lr_dropped"] for r in rows] == [False, False, False, True, False, False]
    accuracy = 100 - rows[-1]["val_top1_err"]
    report = (f"Fashion-MNIST test accuracy {accuracy:.2f}% after {len(rows)} epochs in {seconds:.0f} s "
              f"({rows[-1]['images_per_s']:.0f} img/s, data wait {rows[-1]['data_wait_pct']:.1f}%)")
    print(report)
    (CACHE / "last-run.txt").write_text(report + "\n" + proc.stderr)
    assert accuracy >= 85.0, report
    # It learned from the data: the training loss fell well below chance (ln 10 ≈ 2.30).
    assert rows[-1]["train_loss"] < 0.7 * 2.3026, rows
