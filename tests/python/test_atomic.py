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
