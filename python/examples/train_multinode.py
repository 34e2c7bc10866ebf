"""Training across nodes with torchrun: each process reads its rank and the world size from the
environment torchrun sets, takes its slice of every epoch from the alexpipe loader, and the loader's
state is saved with the model in the checkpoint, so a job killed mid-epoch (or restarted on another
number of nodes) resumes the epoch where it stopped, each remaining record trained once.

    # on every node (N nodes, G processes each; the same command, the same shards path):
    torchrun --nnodes=N --nproc-per-node=G --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \\
        python/examples/train_multinode.py /shared/shards --checkpoint /shared/ckpt.pt

The shards must be where every node sees them (a shared filesystem, or the same copy on each
node). CPU processes use the gloo backend, GPU ones NCCL. ``--stop-after K`` ends the run after K
steps (to try a resume); ``--epochs`` is the whole run.
"""

import argparse
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from alexpipe.torch import TorchLoader


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shards")
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--crop", type=int, default=48)
    ap.add_argument("--stop-after", type=int, default=None, help="end after this many steps of this run")
    args = ap.parse_args()

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")  # RANK, WORLD_SIZE, MASTER_ADDR from torchrun
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}") if cuda else torch.device("cpu")
    loader = TorchLoader(
        args.shards, batch_size=args.batch_size, crop=args.crop, mean="channel",
        rank=rank, world_size=world, threads=1, device=str(device),
    )
    classes = len(loader.loader.dataset.classes)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 5, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes)
    ).to(device)
    model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    epoch = 0
    if args.checkpoint.exists():
        ckpt = torch.load(args.checkpoint, map_location=device, weights_only=True)
        model.module.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        loader.load_state_dict(ckpt["loader"])  # the epoch and the position all ranks reached
        epoch = loader.loader.epoch  # the state's epoch, or the next one if it had ended
        if rank == 0:
            print(f"resumed at epoch {epoch}, step {ckpt['step']}", flush=True)
    step, loss = 0, None
    while epoch < args.epochs:
        loader.set_epoch(epoch)  # keeps a loaded position when it is this epoch's
        for images, labels in loader:
            loss = nn.functional.cross_entropy(model(images), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if args.stop_after is not None and step == args.stop_after:
                save(args.checkpoint, model, opt, loader, step, rank)
                dist.destroy_process_group()
                return
        epoch += 1
    save(args.checkpoint, model, opt, loader, step, rank)
    if rank == 0:
        last = "no step left" if loss is None else f"last loss {loss.item():.3f}"
        print(f"done: {args.epochs} epochs, {step} steps in this run, {last}", flush=True)
    dist.destroy_process_group()


def save(path, model, opt, loader, step, rank):
    """Rank 0 writes the checkpoint (the loader's state is the same on every rank at a step they
    all reached), through a temporary file and a rename; the others wait for it."""
    if rank == 0:
        tmp = path.with_name(path.name + ".tmp")
        state = {"model": model.module.state_dict(), "optimizer": opt.state_dict(), "loader": loader.state_dict(), "step": step}
        torch.save(state, tmp)
        os.replace(tmp, path)
        print(f"saved at epoch {state['loader']['epoch']}, step {step}", flush=True)
    dist.barrier()


if __name__ == "__main__":
    main()
