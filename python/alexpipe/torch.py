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

    def __init__(self, source, *, device: Optional[str] = None, pin_memory: bool = False, **loader_args):
        self.loader = Loader(source, **loader_args)
        self.device = torch.device(device) if device is not None else None
        self.pin_memory = pin_memory

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
        for images, labels, *_ in self.loader:
            x = torch.from_numpy(images)
            y = torch.from_numpy(labels)
            if self.pin_memory:
                x, y = x.pin_memory(), y.pin_memory()
            if self.device is not None:
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True)
            yield x, y
