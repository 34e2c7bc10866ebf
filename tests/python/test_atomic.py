"""A build killed at any moment (SIGKILL) never leaves something that opens as a dataset, and never
damages the previous dataset at the same path."""

import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from alexpipe_format import Dataset
from conftest import BIN, ROOT
from PIL import Image


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """1200 JPEG inputs, enough for a build to take a noticeable time."""
    root = tmp_path_factory.mktemp("many") / "in"
    rng = np.random.default_rng(3)
    srcs = sorted((ROOT / "fixtures" / "images").rglob("*.jpg"))
    for c in range(4):
        (root / f"class{c}").mkdir(parents=True)
    for i in range(1200):
        src = srcs[i % len(srcs)]
        shutil.copy(src, root / f"class{i % 4}" / f"{i:04d}_{src.name}")
    return root


def opens_as_dataset(path):
    try:
        Dataset(path)
        return True
    except Exception:
        return False


def kill_after(args, delay):
    proc = subprocess.Popen([str(BIN), "--quiet", *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode


def test_killed_build_leaves_no_dataset(many, tmp_path):
    killed = 0
    for k, delay in enumerate([0.02, 0.1, 0.2, 0.35, 0.5, 0.7]):
        out = tmp_path / f"ds{k}"
        rc = kill_after([many, out, "--shard-size", "16", "--threads", "1"], delay)
        killed += rc != 0
        if rc == 0:
            # finished before the kill: then it must be complete and valid
            assert opens_as_dataset(out)
            continue
        assert not out.exists() or not opens_as_dataset(out)
        for partial in tmp_path.glob(f"ds{k}.partial-*"):
            assert not (partial / "manifest.json").exists()
            assert not opens_as_dataset(partial)
    assert killed >= 3, "the builds finished before the kill: the test needs more inputs"


def test_killed_rebuild_keeps_previous_dataset(many, tmp_path):
    out = tmp_path / "ds"
    subprocess.run([str(BIN), "--quiet", many, out, "--size", "64"], check=True)
    before = (out / "manifest.json").read_bytes()
    for delay in (0.05, 0.3):
        rc = kill_after([many, out, "--shard-size", "16", "--threads", "1"], delay)
        assert rc != 0, "the build finished before the kill: the test needs more inputs"
        assert (out / "manifest.json").read_bytes() == before
        assert opens_as_dataset(out)
    # The next build completes and cleans up what the killed ones left.
    subprocess.run([str(BIN), "--quiet", many, out, "--size", "32"], check=True)
    assert Dataset(out).size == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_kill9_at_random_points_24_times(many, tmp_path):
    """SIGKILL at 24 seeded-random moments of fresh builds and of rebuilds over a dataset: every
    directory left is either a complete dataset that verifies, or refuses to open saying it is
    incomplete; the next build then succeeds and removes the leftovers."""
    import random

    import alexpipe

    args = ["--shard-size", "16", "--threads", "2", "--size", "48"]
    full = float("inf")
    for _ in range(2):  # the faster of a cold and a warm run: most kills land mid-build
        t = time.monotonic()
        subprocess.run([str(BIN), "--quiet", many, tmp_path / "timing", *args], check=True)
        full = min(full, time.monotonic() - t)
    records = len(alexpipe.Dataset(tmp_path / "timing"))
    shutil.rmtree(tmp_path / "timing")
    rng = random.Random(9)
    prev = tmp_path / "prev"
    subprocess.run([str(BIN), "--quiet", many, prev, "--size", "32"], check=True)
    prev_manifest = (prev / "manifest.json").read_bytes()
    outcomes = {"killed": 0, "finished": 0}
    for k in range(24):
        rebuild = k % 2 == 1
        out = prev if rebuild else tmp_path / f"fresh{k}"
        rc = kill_after([many, out, *args], rng.uniform(0.0, full))
        outcomes["killed" if rc != 0 else "finished"] += 1
        if rebuild:
            assert out.exists(), "a rebuild killed midway left no dataset at OUT"
        for d in [out, *tmp_path.glob(f"{out.name}.partial-*"), *tmp_path.glob(f"{out.name}.old-*")]:
            if not d.exists():
                continue
            try:
                ds = alexpipe.Dataset(d)
            except alexpipe.AlexpipeError as e:
                assert "incomplete" in str(e) and "build-shards" in str(e), str(e)
                assert d != out or not rebuild, "a rebuild killed midway lost the previous dataset"
                continue
            assert ds.verify() == len(ds) > 0
            if d == out and rebuild and rc != 0:
                # killed: the dataset there is the previous one, or the finished new one
                assert (out / "manifest.json").read_bytes() == prev_manifest or ds.size == 48
        if rebuild and rc == 0:
            prev_manifest = (out / "manifest.json").read_bytes()
    assert outcomes["killed"] >= 12, outcomes
    # Re-running succeeds, verifies, and cleans up what the killed builds left.
    for k in range(0, 24, 2):
        subprocess.run([str(BIN), "--quiet", many, tmp_path / f"fresh{k}", *args], check=True)
        assert alexpipe.Dataset(tmp_path / f"fresh{k}").verify() == records
    subprocess.run([str(BIN), "--quiet", many, prev, *args], check=True)
    assert alexpipe.Dataset(prev).verify() == records
    assert not [p.name for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name]
