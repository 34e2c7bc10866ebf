"""One rank of the DDP smoke test (run by torchrun, gloo backend, CPU): trains a few steps of a tiny
CNN on the alexpipe loader's rank slice and checks with all_gather that the ranks saw disjoint
records (up to the padding that evens them out) covering the dataset."""

import os
import sys

import torch
import torch.distributed as dist
from torch import nn

import alexpipe


def main():
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    loader = alexpipe.Loader(
        sys.argv[1], batch_size=4, crop=48, rank=rank, world_size=world, threads=1, drop_last=False, debug=True
    )
    model = nn.parallel.DistributedDataParallel(
        nn.Sequential(nn.Conv2d(3, 8, 5, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    seen = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        for images, labels, info in loader:
            loss = nn.functional.cross_entropy(model(torch.from_numpy(images)), torch.from_numpy(labels))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if epoch == 0:
                seen.extend(int(i) for i in info["indices"])
    mine = torch.tensor(sorted(seen))
    gathered = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine)
    sets = [set(g.tolist()) for g in gathered]
    n = len(alexpipe.Dataset(sys.argv[1]))
    padding = -(-n // world) * world - n  # indices repeated to even out the ranks
    overlap = sum(len(sets[a] & sets[b]) for a in range(world) for b in range(a + 1, world))
    assert overlap <= padding and len(set().union(*sets)) == n, (sets, padding)
    # the weights stayed in sync across ranks
    w = next(model.parameters()).detach().flatten()[:4].clone()
    ws = [torch.zeros_like(w) for _ in range(world)]
    dist.all_gather(ws, w)
    assert all(torch.equal(ws[0], x) for x in ws)
    print(f"ddp ok rank {rank} loss {loss.item():.3f}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    # Skip the interpreter's teardown of torch: gloo's threads sometimes abort it ("terminate called
    # without an active exception", about 1 run in 6 on the 2-core machine; a race like the one
    # pytorch/pytorch PR 179291 describes), after every check here has passed. alexpipe's own
    # shutdown is tested in tests/loader_shutdown.rs and test_memory_does_not_grow_over_epochs.
    os._exit(0)


if __name__ == "__main__":
    main()
