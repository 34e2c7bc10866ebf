"""One rank of the elastic-resume test (run by torchrun, gloo backend, CPU).

``save DS CKPT OUT STOP``: iterates STOP batches of epoch 1 on this rank's slice, writes the records it
saw to OUT/save-RANK.txt, and saves the loader's state through ``torch.distributed.checkpoint`` at
that synchronised step. ``resume DS CKPT OUT``: opens a loader for this (possibly different) world
size, loads the state through ``torch.distributed.checkpoint``, iterates the rest of the epoch and
writes the records it saw to OUT/resume-RANK.txt. The test (test_resume.py) checks coverage."""

import os
import sys
from pathlib import Path

import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.stateful import Stateful

import alexpipe


def main():
    phase, ds, ckpt, out = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    loader = alexpipe.Loader(
        ds, batch_size=4, crop=48, rank=rank, world_size=world, threads=1 + rank % 2, drop_last=False, debug=True
    )
    assert isinstance(loader, Stateful)
    seen = []
    if phase == "save":
        stop = int(sys.argv[5])
        loader.set_epoch(1)
        for k, (_, _, info) in enumerate(loader):
            seen.extend(int(i) for i in info["indices"])
            if k + 1 == stop:
                break
        dist.barrier()  # the synchronised step every rank has reached
        dcp.save({"loader": loader}, checkpoint_id=ckpt)
    else:
        dcp.load({"loader": loader}, checkpoint_id=ckpt)
        state = loader.state_dict()
        assert state["epoch"] == 1 and state["consumed"] > 0, state
        loader.set_epoch(state["epoch"])  # the training loop's call keeps the loaded position
        for _, _, info in loader:
            seen.extend(int(i) for i in info["indices"])
        assert loader.state_dict()["epoch"] == 2  # the epoch is over
    (out / f"{phase}-{rank}.txt").write_text(" ".join(map(str, seen)))
    print(f"{phase} ok rank {rank} of {world}: {len(seen)} records", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    # As ddp_worker.py: skip torch's interpreter teardown (gloo's threads sometimes abort it).
    os._exit(0)


if __name__ == "__main__":
    main()
