"""The peer baseline for benches/loader.rs: a PyTorch DataLoader with torchvision doing the same work
as the alexpipe loader on the same data and the same number of cores. Prints one JSON line
{"images": n, "seconds": s, "images_per_s": r}.

--what array-f32        pre-decoded uint8 array (N, 256, 256, 3) (the raw shards' records) → random
                        224 crop, flip p=0.5, PCA lighting α~N(0, 0.1), minus the mean image → f32 CHW
--what array-u8         same array → random crop + flip → uint8 HWC
--what folder256-f32    ImageFolder over the 256×256 JPEG records (what jpeg shards hold) → the f32 work
--what imagefolder-f32  ImageFolder over the original JPEGs → Resize(256), CenterCrop(256), then the
                        f32 work (what original-mode shards do at train time)

Usage: target/peers-venv/bin/python benches/peer_torch.py CORPUS --shards RAW_SHARDS --what W
       [--workers N] [--epochs 2] [--batch 128]   (needs torch + torchvision: benches/setup_peers.sh)
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from alexpipe_format import Dataset as Shards  # noqa: E402


class Augment:
    """§4.1 on a uint8 HWC tensor: random crop, flip, lighting, mean image; CHW float out."""

    def __init__(self, mean_image, eigvecs, axis_std, f32=True):
        self.mean = torch.from_numpy(mean_image).permute(2, 0, 1).contiguous()  # 3x256x256
        self.eigvecs = torch.tensor(eigvecs, dtype=torch.float32)
        self.axis_std = torch.tensor(axis_std, dtype=torch.float32)
        self.f32 = f32

    def __call__(self, hwc):
        chw = hwc.permute(2, 0, 1)
        i, j, h, w = int(torch.randint(0, 33, ())), int(torch.randint(0, 33, ())), 224, 224
        flip = bool(torch.rand(()) < 0.5)
        patch = chw[:, i : i + h, j : j + w]
        if not self.f32:
            out = patch.flip(-1) if flip else patch
            return out.permute(1, 2, 0).contiguous()
        mean = self.mean[:, i : i + h, j : j + w]
        alpha = torch.randn(3) * 0.1
        delta = self.eigvecs @ (alpha * self.axis_std)
        out = patch.float() - mean + delta[:, None, None]
        return out.flip(-1) if flip else out


class ArrayData(Dataset):
    def __init__(self, images, labels, aug):
        self.images, self.labels, self.aug = images, labels, aug

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, k):
        return self.aug(torch.from_numpy(self.images[k])), self.labels[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--shards", type=Path, required=True)
    ap.add_argument("--what", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    shards = Shards(args.shards, check_crc=False)
    stats = shards.manifest["stats"]
    axis_std = np.sqrt(np.maximum(stats["eigvals"], 0))
    aug = Augment(shards.mean_image, stats["eigvecs"], axis_std, f32=args.what != "array-u8")
    if args.what.startswith("array"):
        images = np.stack([shards.pixels(i)[0] for i in range(len(shards))])
        labels = [shards.records[i][0] for i in range(len(shards))]
        data = ArrayData(images, labels, aug)
    else:
        to_tensor = v2.PILToTensor()
        if args.what == "folder256-f32":
            root = args.shards.parent / (args.shards.name + "-jpeg256")
            if not root.exists():
                for k, (label, rec) in enumerate(shards.records):
                    d = root / f"class{label:03d}"
                    d.mkdir(parents=True, exist_ok=True)
                    pix = shards.pixels(k)[0]
                    Image.fromarray(pix).save(d / f"{k:06d}.jpg", quality=90)
            pre = lambda im: to_tensor(im).permute(1, 2, 0)
        else:
            root = args.corpus
            resize = v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(256)])
            pre = lambda im: to_tensor(resize(im)).permute(1, 2, 0)
        data = torchvision.datasets.ImageFolder(str(root), transform=lambda im: aug(pre(im)))
    loader = DataLoader(data, batch_size=args.batch, shuffle=True, num_workers=args.workers, drop_last=True,
                        persistent_workers=True, prefetch_factor=2)
    for _ in loader:  # warm-up epoch: workers start, caches fill
        pass
    n = 0
    t = time.perf_counter()
    for _ in range(args.epochs):
        for x, y in loader:
            n += x.shape[0]
    dt = time.perf_counter() - t
    print(json.dumps({"images": n, "seconds": dt, "images_per_s": n / dt}))


if __name__ == "__main__":
    main()
