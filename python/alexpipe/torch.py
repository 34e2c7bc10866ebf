"""PyTorch helper: the alexpipe Loader yielding torch tensors.

``torch.from_numpy`` shares the engine's buffer (no copy).

Normalisation is the Loader's ``mean=`` option, and it decides what the network sees: ``"image"``
(the default, the paper's §2) subtracts the training set's mean image and leaves inputs in pixel
levels of about ±128, for the paper's AlexNet — a torchvision-style network without normalisation
layers diverges on it at the usual learning rates; ``"channel"`` gives unit-scale inputs from the
dataset's own channel mean and std; ``"imagenet"`` gives exactly what torchvision models expect
(mean 0.485, 0.456, 0.406 and std 0.229, 0.224, 0.225 of [0, 1] pixels). For example::

    loader = TorchLoader("shards/", batch_size=128, mean="imagenet")        # training
    val = TorchLoader("val-shards/", train=False, mean="imagenet")          # centre patches
 With ``device="cuda"`` each batch is
copied to pinned host memory (when ``pin_memory``) and sent with a non-blocking copy, so the copy of
batch k+1 overlaps the computation on batch k.

``TorchLoader`` is ``Stateful`` (``state_dict()`` / ``load_state_dict()``, the protocol of
``torch.distributed.checkpoint``, Lightning and accelerate): save it with the model at a step every
rank has reached, load it, and the next iteration resumes the epoch there — under any number of
processes, each remaining record trained once, with the augmentation it would have had::

    import torch.distributed.checkpoint as dcp
    dcp.save({"model": model_state, "loader": loader}, checkpoint_id=path)   # mid-epoch
    ...
    loader = TorchLoader(path_to_shards, rank=rank, world_size=new_world)
    dcp.load({"model": model_state, "loader": loader}, checkpoint_id=path)   # resumes the epoch

Importable only when torch is installed.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Tuple

import torch

from . import Loader

__all__ = ["TorchLoader"]


class TorchLoader:
    """Wraps :class:`alexpipe.Loader` (same arguments, ``mean=`` included: see the module's
    docs for which normalisation a model expects) and yields ``(images, labels)`` tensors."""

    def __init__(self, source, *, device: Optional[str] = None, pin_memory: bool = False,
                 upload: str = "f32", channels_last: bool = False, **loader_args):
        if upload not in ("f32", "u8"):
            raise ValueError(f'upload={upload!r}: use "f32" (the engine\'s finished batches) or "u8" '
                             '(crop and mirror on the CPU, the rest on the device)')
        if upload == "u8":
            if loader_args.get("layout", "u8_nhwc") != "u8_nhwc":
                raise ValueError('upload="u8" sets layout="u8_nhwc" itself: leave layout out')
            loader_args = {**loader_args, "layout": "u8_nhwc", "debug": True}
        self.loader = Loader(source, **loader_args)
        self.device = torch.device(device) if device is not None else None
        self.pin_memory = pin_memory
        self.channels_last = channels_last
        self._finish = _DeviceFinish(self.loader, self.device or torch.device("cpu")) if upload == "u8" else None

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch of the next iteration (order and augmentation)."""
        self.loader.set_epoch(epoch)

    def state_dict(self) -> Dict[str, Any]:
        """The loader's state after the batches yielded so far (:meth:`alexpipe.Loader.state_dict`)."""
        return self.loader.state_dict()

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Resumes the next iteration from ``state_dict`` (:meth:`alexpipe.Loader.load_state_dict`)."""
        self.loader.load_state_dict(state_dict)

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        for images, labels, *info in self.loader:
            x = torch.from_numpy(images)
            y = torch.from_numpy(labels)
            if self.pin_memory:
                x, y = x.pin_memory(), y.pin_memory()
            if self.device is not None:
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True)
            if self._finish is not None:
                x = self._finish(x, info[0])
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y


class _DeviceFinish:
    """The end of the engine's f32 path as torch ops on the batch's device (``upload="u8"``): PCA
    lighting, mean subtraction (the mean image cropped and mirrored with each patch, or channel
    mean/std) and NHWC → NCHW, with the per-sample parameters the engine drew, in the engine's
    order of operations, so the result equals the f32 layout's within float rounding."""

    def __init__(self, loader, device: torch.device):
        n = loader.normalization()
        self.device = device
        self.eigvecs = n["eigvecs"]
        self.axis_std = n["axis_std"]
        # The paper's recipe reads patches of the stored image, so its mean image follows them;
        # RandomResizedCrop's u8 output is the finished window (mirror included), channel-normalised.
        self.mean_image = None
        if n["mean"] == "image":
            if n["recipe"] != "paper":
                raise ValueError('upload="u8" with recipe="rrc" normalises by channel: use mean="imagenet" or "channel"')
            self.mean_image = torch.from_numpy(n["mean_image"]).to(device)
        std = torch.from_numpy(n["channel_std"]).to(device)
        self.inv_std = (1.0 / std).view(1, 1, 1, 3)
        self.channel_mean = torch.from_numpy(n["channel_mean"]).to(device).view(1, 1, 1, 3)

    def __call__(self, images: torch.Tensor, params: Dict[str, Any]) -> torch.Tensor:
        import numpy as np

        # δ = eigvecs · (α ⊙ axis_std) per sample, in float64 then float32 as the engine does.
        alpha = params["alpha"].astype(np.float64)
        delta = ((alpha * self.axis_std) @ self.eigvecs.T).astype(np.float32)
        delta = torch.from_numpy(delta).to(images.device).view(-1, 1, 1, 3)
        x = images.to(torch.float32)
        if self.mean_image is not None:
            crop = images.shape[1]
            steps = torch.arange(crop, device=images.device)
            xs = torch.from_numpy(params["x"]).to(images.device).view(-1, 1)
            ys = torch.from_numpy(params["y"]).to(images.device).view(-1, 1)
            flip = torch.from_numpy(params["flip"].astype(np.int64)).to(images.device).view(-1, 1)
            columns = xs + steps + flip * (crop - 1 - 2 * steps)
            rows = ys + steps
            patch = self.mean_image[rows[:, :, None], columns[:, None, :]]
            x = (x - patch) + delta
        else:
            x = x * self.inv_std + (delta - self.channel_mean) * self.inv_std
        return x.permute(0, 3, 1, 2).contiguous()
