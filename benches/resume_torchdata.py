"""The peer of benches/resume.rs: torchdata's StatefulDataLoader resuming the same epoch at the same
points. A map-style dataset of the same synthetic 8x8 records (random 6x6 crop and mirror per
sample), shuffled, batches of the same size; the state is taken after STOP batches of an epoch, and
the time measured is a fresh loader's load_state_dict + iter + first batch (median of --reps).

Prints one JSON line: {"workers": W, "ms": {"0": ..., "50": ..., "99": ...}}, or exits 3 when
torchdata does not import (the bench then leaves the column out).
"""

import argparse
import json
import statistics
import sys
import time

try:
    import numpy as np
    import torch
    from torchdata.stateful_dataloader import StatefulDataLoader
except ImportError as e:
    print(f"torchdata: {e}", file=sys.stderr)
    sys.exit(3)


class Records(torch.utils.data.Dataset):
    def __init__(self, n, size=8, crop=6):
        i = np.arange(n)[:, None] * 37 + np.arange(size * size * 3)[None, :] * 13
        self.pixels = (i % 256).astype(np.uint8).reshape(n, size, size, 3)
        self.size, self.crop = size, crop

    def __len__(self):
        return len(self.pixels)

    def __getitem__(self, i):
        span = self.size - self.crop
        x, y = np.random.randint(0, span + 1, size=2)
        patch = self.pixels[i, y : y + self.crop, x : x + self.crop]
        if np.random.rand() < 0.5:
            patch = patch[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(patch)), i % 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--percents", default="0,50,99")
    a = ap.parse_args()
    torch.manual_seed(0)
    data = Records(a.batches * a.batch_size)

    def loader():
        g = torch.Generator()
        g.manual_seed(0)
        return StatefulDataLoader(data, batch_size=a.batch_size, shuffle=True, num_workers=a.workers, generator=g)

    out = {}
    for pct in map(int, a.percents.split(",")):
        stop = a.batches * pct // 100
        dl = loader()
        it = iter(dl)
        for _ in range(stop):
            next(it)
        state = dl.state_dict()
        del it, dl
        times = []
        for _ in range(a.reps):
            t = time.perf_counter()
            dl = loader()
            dl.load_state_dict(state)
            next(iter(dl))
            times.append((time.perf_counter() - t) * 1e3)
            del dl
        out[str(pct)] = statistics.median(times)
    print(json.dumps({"workers": a.workers, "ms": out}))


if __name__ == "__main__":
    main()
