"""alexpipe — AlexNet's data pipeline (Krizhevsky, Sutskever & Hinton, 2012) as a fast engine.

Build shards once (paper §2), then stream augmented batches (§4.1) into PyTorch or anything that
takes numpy arrays::

    import alexpipe
    alexpipe.build_shards("images/", "shards/")          # ImageFolder layout or a list file
    loader = alexpipe.Loader("shards/", batch_size=128)   # the paper's augmentation by default
    for epoch in range(90):
        loader.set_epoch(epoch)
        for images, labels in loader:                     # float32 [128, 3, 224, 224], int64 [128]
            ...

The images array views the engine's batch buffer without a copy; the buffer goes back to the
engine when the array is garbage-collected (keep a reference, or ``.copy()``, to hold a batch
longer). Errors name the file (shard, record) and the fix, and come by kind: ``ValueError`` for bad
arguments, ``IndexError`` for a record out of range, ``OSError`` (``FileNotFoundError``, …) for the
operating system's errors, and ``AlexpipeError`` for the rest, with subclasses to catch apart:
``DatasetFormatError`` (not a dataset, another version), ``CorruptDataError`` (a checksum failed:
rebuild), ``RejectedInputError`` (``strict=True`` builds), ``UnsupportedError`` (a feature this
build lacks) and ``InternalError`` (a bug: please report it). ``alexpipe.torch`` yields torch
tensors.

Resuming mid-epoch: ``state = loader.state_dict()`` after any batch (a dict of ints and strings, the
same on every rank at a step they all reached: the epoch and how many positions of its global order
all ranks together consumed, with the seed and what identifies the dataset and recipe);
``loader.load_state_dict(state)`` in a new process starts the next iteration there, at once, under any
``world_size``, threads or prefetch — the rest of the epoch split among the new ranks (padded, like a
whole epoch, by repeating the epoch's first records), each record with the augmentation it would
have had, bit-identical batches under the same world and batch size. A state saved at an epoch's end
starts the next epoch; ``set_epoch`` to the state's epoch keeps the position, another epoch drops
it; the position serves one iteration. A state from another dataset, seed or recipe, or a corrupt
one, raises ``ValueError`` naming what differs. ``Loader`` and ``alexpipe.torch.TorchLoader`` follow
the ``Stateful`` protocol of ``torch.distributed.checkpoint``.

HDF5 (package built with the ``hdf5`` feature): ``Dataset("file.h5")`` or
``Dataset("file.h5", images_key=..., labels_key=...)`` reads any N×S×S×3 uint8 image dataset with its
labels, ``build_shards(..., format="hdf5")`` writes one, ``convert(input, out)`` goes either way.

Many machines: ``build_shards(input, dir_k, part="K/N")`` on each, then ``merge_parts(dirs, out)``
gives the dataset a one-go build gives, byte for byte; ``alexpipe.distributed.build_on_ray`` does
both on a Ray cluster (docs/DISTRIBUTED.md).
"""

from ._alexpipe import (
    AlexpipeError,
    CorruptDataError,
    Dataset,
    DatasetFormatError,
    InternalError,
    Loader,
    RejectedInputError,
    UnsupportedError,
    build_shards,
    convert,
    merge_parts,
    random_resized_crop_windows,
)

__all__ = [
    "AlexpipeError",
    "CorruptDataError",
    "Dataset",
    "DatasetFormatError",
    "InternalError",
    "Loader",
    "RejectedInputError",
    "UnsupportedError",
    "build_shards",
    "convert",
    "merge_parts",
    "random_resized_crop_windows",
]
__version__ = "0.1.0"
