"""Resuming an epoch from Python (issue 15): ``Loader.state_dict()`` / ``load_state_dict()`` through
json, under other threads and world sizes, the epoch's end, refusals as ``ValueError`` naming what
differs, ``TorchLoader`` and ``torch.distributed.checkpoint`` (in process, and with torchrun from 2
processes to 3)."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, require

import alexpipe

ARGS = dict(batch_size=4, crop=48, seed=9, drop_last=False, debug=True)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "ds"
    assert alexpipe.build_shards(FIXTURES, out, size=64, progress=False)["records"] == 31
    return out


def run(loader, stop=None):
    """(images, indices, params) of the loader's next iteration, its first `stop` batches."""
    got = []
    for k, (images, labels, info) in enumerate(loader):
        got.append((images.copy(), info["indices"].copy(), info["x"].copy(), info["y"].copy(), info["flip"].copy()))
        if stop is not None and k + 1 == stop:
            break
    return got


def same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


def test_round_trip_through_json_gives_the_uninterrupted_batches(shards):
    whole = alexpipe.Loader(shards, **ARGS)
    whole.set_epoch(2)
    expected = run(whole)
    first = alexpipe.Loader(shards, threads=1, **ARGS)
    first.set_epoch(2)
    head = run(first, stop=3)
    state = first.state_dict()
    assert all(isinstance(v, (int, str)) for v in state.values()), state
    assert (state["epoch"], state["consumed"], state["records"]) == (2, 12, 31)
    state = json.loads(json.dumps(state))
    second = alexpipe.Loader(shards, threads=3, prefetch=1, **ARGS)
    second.load_state_dict(state)
    assert len(second) == len(expected) - 3
    second.set_epoch(2)  # keeps the loaded position
    same(head + run(second), expected)
    # The loaded position served one iteration; the next is the whole epoch.
    same(run(second), expected)


def test_elastic_resume_covers_the_epoch_once(shards):
    ds = alexpipe.Dataset(shards)
    args = dict(ARGS, batch_size=3)
    seen, state = [], None
    for rank in range(2):
        loader = alexpipe.Loader(ds, rank=rank, world_size=2, **args)
        seen += [int(i) for b in run(loader, stop=2) for i in b[1]]
        state = loader.state_dict()
    assert state["consumed"] == 12
    after = []
    for rank in range(5):
        loader = alexpipe.Loader(ds, rank=rank, world_size=5, **dict(args, batch_size=2))
        loader.load_state_dict(state)
        after += [int(i) for b in run(loader) for i in b[1]]
    counts = Counter(seen + after)
    padding = -(-19 // 5) * 5 - 19
    assert set(counts) == set(range(31)) and sum(counts.values()) == 31 + padding
    assert not set(seen) & set(after) - {i for i, c in counts.items() if c > 1}


def test_a_state_at_the_epochs_end_starts_the_next_epoch(shards):
    loader = alexpipe.Loader(shards, **ARGS)
    loader.set_epoch(4)
    run(loader)
    state = loader.state_dict()
    assert (state["epoch"], state["consumed"]) == (5, 0)
    resumed = alexpipe.Loader(shards, **ARGS)
    resumed.load_state_dict(state)
    assert resumed.epoch == 5
    fresh = alexpipe.Loader(shards, **ARGS)
    fresh.set_epoch(5)
    same(run(resumed), run(fresh))
    # Before any iteration the state is the epoch's start.
    assert alexpipe.Loader(shards, **ARGS).state_dict()["consumed"] == 0


def test_states_from_another_loader_or_corrupt_are_refused(shards):
    state = alexpipe.Loader(shards, **ARGS).state_dict()

    def refused(d, **kw):
        loader = alexpipe.Loader(shards, **dict(ARGS, **kw))
        with pytest.raises(ValueError) as e:
            loader.load_state_dict(d)
        assert loader.state_dict()["consumed"] == 0 and loader.epoch == 0
        return str(e.value)

    assert "seed (state 9, loader 10)" in refused(state, seed=10)
    assert "crop (state 48, loader 40)" in refused(state, crop=40)
    assert "mean (state image, loader channel)" in refused(state, mean="channel")
    assert "shuffle" in refused(state, shuffle=False)
    assert "dataset" in refused(state, indices=list(range(30)))
    assert "corrupt" in refused(dict(state, consumed=32))
    assert "version" in refused(dict(state, version=7))
    assert "missing field `seed`" in refused({k: v for k, v in state.items() if k != "seed"})
    assert "rank" in refused(dict(state, rank=0))
    assert "not an alexpipe loader state" in refused(dict(state, epoch=-1))
    assert "not an alexpipe loader state" in refused(dict(state, epoch=1.5))
    assert "not an alexpipe loader state" in refused([1, 2])
    assert "not an alexpipe loader state" in refused(dict(state, epoch=object()))
    # What may differ: world size, batch size, threads, prefetch.
    alexpipe.Loader(shards, **dict(ARGS, batch_size=5, threads=2, prefetch=7, rank=1, world_size=3)).load_state_dict(
        state
    )


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_torch_loader_is_stateful_and_checkpoints_with_dcp(shards, tmp_path):
    torch = require("torch", reason="torch is part of requirements-dev.txt")
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.stateful import Stateful

    from alexpipe.torch import TorchLoader

    args = dict(ARGS, debug=False)
    whole = [x.clone() for x, _ in TorchLoader(shards, **args)]
    first = TorchLoader(shards, **args)
    assert isinstance(first, Stateful) and isinstance(first.loader, Stateful)
    head = []
    for x, _ in first:
        head.append(x.clone())
        if len(head) == 2:
            break
    assert first.state_dict()["consumed"] == 8
    dcp.save({"loader": first}, checkpoint_id=str(tmp_path / "ckpt"))
    second = TorchLoader(shards, **dict(args, threads=2))
    dcp.load({"loader": second}, checkpoint_id=str(tmp_path / "ckpt"))
    assert second.state_dict() == first.state_dict()
    rest = [x.clone() for x, _ in second]
    assert len(head + rest) == len(whole)
    assert all(torch.equal(a, b) for a, b in zip(head + rest, whole))


def test_torchrun_two_processes_save_three_resume(shards, tmp_path):
    require("torch", reason="torch is part of requirements-dev.txt")
    worker = Path(__file__).parent / "resume_worker.py"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ckpt = tmp_path / "ckpt"

    def torchrun(n, *args):
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", str(worker), *args],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    stop = 1  # each of 2 ranks consumes one batch of 4: positions 0..8 of the epoch's order
    assert torchrun(2, "save", str(shards), str(ckpt), str(tmp_path), str(stop)).count("save ok") == 2
    assert torchrun(3, "resume", str(shards), str(ckpt), str(tmp_path)).count("resume ok") == 3
    read = lambda name: [int(i) for i in (tmp_path / name).read_text().split()]  # noqa: E731
    before = read("save-0.txt") + read("save-1.txt")
    after = read("resume-0.txt") + read("resume-1.txt") + read("resume-2.txt")
    assert len(before) == 2 * stop * 4
    rest = 31 - len(before)
    padding = -(-rest // 3) * 3 - rest  # repeats of the epoch's first records evening out 3 ranks
    counts = Counter(before + after)
    assert set(counts) == set(range(31)), "every record of the epoch is trained"
    assert sum(counts.values()) == 31 + padding and len(after) == rest + padding
    # The padding repeats records of the epoch's start (already trained before the stop).
    twice = [i for i, c in counts.items() if c == 2]
    assert len(twice) == padding and set(twice) <= set(before)
