"""Trains the paper's AlexNet (§3, defined below in a few lines of torch) on an alexpipe dataset with
the alexpipe loader: the paper's augmentation (§4.1) and recipe (§5: SGD, momentum 0.9, weight decay
5e-4, lr 0.01 divided by 10 on plateaus).

    .venv/bin/python python/examples/train_torch.py SHARDS [--val VAL_SHARDS] [--epochs 90]
        [--width 1.0] [--crop 224] [--batch 128] [--device cuda]

--width scales the channel counts (e.g. 0.25 with --crop 112 trains on a CPU). LRN follows
PyTorch's convention (alpha divided by n), like cuda-convnet and Caffe.
"""

import argparse
import time

import torch
from torch import nn

from alexpipe.torch import TorchLoader


def alexnet(classes, width=1.0):
    c = lambda n: max(8, int(n * width) // 2 * 2)  # even: the two-GPU groups split the channels
    lrn = lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    net = nn.Sequential(
        nn.Conv2d(3, c(96), 11, stride=4, padding=2), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c(96), c(256), 5, padding=2, groups=2), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c(256), c(384), 3, padding=1), nn.ReLU(),
        nn.Conv2d(c(384), c(384), 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(c(384), c(256), 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d(6), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(c(256) * 36, c(4096)), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(c(4096), c(4096)), nn.ReLU(),
        nn.Linear(c(4096), classes),
    )
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
    for k in (4, 10, 12, 18, 21):  # conv2, conv4, conv5, fc6, fc7: bias 1 (§5)
        nn.init.ones_(net[k].bias)
    return net


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shards")
    ap.add_argument("--val")
    ap.add_argument("--epochs", type=int, default=90)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    train = TorchLoader(args.shards, batch_size=args.batch, crop=args.crop, device=args.device,
                        pin_memory=device.type == "cuda")
    classes = len(train.loader.dataset.classes)
    model = alexnet(classes, args.width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=3)
    for epoch in range(args.epochs):
        model.train()
        train.set_epoch(epoch)
        t, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        for x, y in train:
            out = model(x)
            loss = nn.functional.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
        msg = f"epoch {epoch}: loss {loss_sum / max(seen, 1):.3f} train top-1 {correct / max(seen, 1):.3f} " \
              f"{seen / (time.perf_counter() - t):.0f} img/s"
        if args.val:
            model.eval()
            # Validation images get the training set's mean (paper §2), not their own.
            val = TorchLoader(args.val, batch_size=args.batch, crop=args.crop, train=False, shuffle=False,
                              drop_last=False, device=args.device, stats_from=args.shards)
            hits = total = 0
            with torch.no_grad():
                for x, y in val:
                    hits += (model(x).argmax(1) == y).sum().item()
                    total += len(y)
            sched.step(1 - hits / max(total, 1))
            msg += f" val top-1 {hits / max(total, 1):.3f}"
        print(msg, flush=True)


if __name__ == "__main__":
    main()
