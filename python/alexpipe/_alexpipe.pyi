"""Type stubs for the compiled engine (alexpipe._alexpipe)."""

from os import PathLike
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, PathLike[str]]

class AlexpipeError(RuntimeError):
    """A dataset or build error; the message names the file (and record) and the fix."""

class DatasetFormatError(AlexpipeError):
    """A dataset file is not what its format says (not a dataset, another version, inconsistent)."""

class CorruptDataError(AlexpipeError):
    """Bytes that fail their checksum, or a file that changed under an open dataset: rebuild it."""

class RejectedInputError(AlexpipeError):
    """strict=True build: an input image could not be used."""

class UnsupportedError(AlexpipeError):
    """A capability this build of alexpipe lacks (e.g. HDF5 without the `hdf5` feature)."""

class InternalError(AlexpipeError):
    """A failure inside alexpipe (a worker thread that panicked or could not start): please report it."""

def build_shards(
    input: _Path,
    out: _Path,
    size: int = 256,
    mode: str = "raw",
    threads: Optional[int] = None,
    strict: bool = False,
    progress: bool = True,
    quality: int = 90,
    draft: bool = False,
    shard_size: int = 1024,
    root: Optional[_Path] = None,
    format: str = "shards",
    max_side: Optional[int] = None,
    class_names: Optional[_Path] = None,
    label_key: Optional[str] = None,
    image_column: Optional[str] = None,
    label_column: Optional[str] = None,
    part: Optional[str] = None,
) -> Dict[str, Any]:
    """Builds a dataset (paper §2) from an image folder, a list file, WebDataset tars
    ("shard-{000000..000099}.tar", globs, http(s):// URLs; label_key "cls" or "json:label"),
    parquet / Arrow files ("data/train-*.parquet"; image_column, label_column) or a Hugging Face
    dataset directory; class_names: a file of one name per line. Returns a summary dict with
    out, inputs, records, rejected, rejects [(path, reason, detail)], classes, class_counts,
    threads, elapsed_secs. Releases the GIL while building. format="hdf5" writes one HDF5 file
    (raw mode only; needs the hdf5 feature). mode="jpeg", max_side=N stores whole images at
    their own aspect, the long side capped at N (for recipe="rrc"). part="K/N" builds part K of
    N of the input, for merge_parts (tars and parquet are cut by whole files)."""

def merge_parts(parts: Sequence[_Path], out: _Path) -> Dict[str, Any]:
    """Joins every part of a build made with part="K/N" (any order) into out, byte-identical to a
    one-go build. Returns out, parts, records, rejected, shards_linked, shards_copied,
    records_repacked, elapsed_secs. Raises ValueError naming a missing, duplicated or foreign
    part."""

def random_resized_crop_windows(
    width: int,
    height: int,
    count: int,
    seed: int = 0,
    epoch: int = 0,
    scale: Tuple[float, float] = (0.08, 1.0),
    ratio: Tuple[float, float] = (3 / 4, 4 / 3),
) -> Any:
    """The RandomResizedCrop windows a training loader draws for records 0..count of a
    width×height image: int64 array [count, 4] of (left, top, width, height)."""

def convert(
    input: _Path,
    out: _Path,
    images_key: str = "images",
    labels_key: str = "labels",
    shard_size: int = 1024,
) -> int:
    """Shards -> HDF5 file, or HDF5 file -> raw shards (direction from input), losslessly; returns
    the number of records. Needs the hdf5 feature."""

class Dataset:
    """An opened alexpipe dataset: a shard directory or an HDF5 file."""

    def __init__(
        self,
        path: _Path,
        images_key: Optional[str] = None,
        labels_key: Optional[str] = None,
        cache_dir: Optional[_Path] = None,
        cache_bytes: Optional[int] = None,
        s3_endpoint: Optional[str] = None,
        retries: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> None:
        """path: also an http(s):// or s3:// URL of a shard dataset, read through a local cache
        (docs/STREAMING.md); retries: attempts per file (default 8); timeout: seconds to connect
        and per read (default 60)."""
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> Tuple[npt.NDArray[np.uint8], int]:
        """(size x size x 3 uint8 pixels, label)."""
    @property
    def classes(self) -> List[str]: ...
    @property
    def mode(self) -> str: ...
    @property
    def is_hdf5(self) -> bool: ...
    @property
    def size(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def mean_image(self) -> npt.NDArray[np.float32]:
        """(size, size, 3) float32, u8 levels."""
    @property
    def channel_mean(self) -> npt.NDArray[np.float64]: ...
    @property
    def channel_std(self) -> npt.NDArray[np.float64]: ...
    @property
    def covariance(self) -> npt.NDArray[np.float64]: ...
    @property
    def eigvals(self) -> npt.NDArray[np.float64]: ...
    @property
    def eigvecs(self) -> npt.NDArray[np.float64]:
        """Unit eigenvectors as columns."""
    def verify(self) -> int:
        """Checks every checksum; returns the number of records checked."""

class Loader:
    """The engine: iterate for (images, labels) numpy batches (plus a parameter dict if debug)."""

    def __init__(
        self,
        source: Union[_Path, Dataset],
        batch_size: int = 128,
        train: bool = True,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        threads: Optional[int] = None,
        prefetch: int = 4,
        layout: str = "f32_nchw",
        crop: int = 224,
        flip: float = 0.5,
        lighting: Optional[float] = None,
        mean: Optional[str] = None,
        ten_crop: bool = False,
        rank: int = 0,
        world_size: int = 1,
        eigvecs: Optional[Sequence[Sequence[float]]] = None,
        axis_std: Optional[Sequence[float]] = None,
        indices: Optional[Sequence[int]] = None,
        stats_from: Optional[Union[_Path, Dataset]] = None,
        debug: bool = False,
        recipe: str = "paper",
        scale: Tuple[float, float] = (0.08, 1.0),
        ratio: Tuple[float, float] = (3 / 4, 4 / 3),
        crop_fraction: float = 0.875,
        interpolation: Optional[str] = None,
        decode: str = "crop",
        order: str = "global",
        shard_window: int = 4,
        cache_dir: Optional[_Path] = None,
        cache_bytes: Optional[int] = None,
        s3_endpoint: Optional[str] = None,
        color_jitter: Optional[Union[float, Sequence[float]]] = None,
        trivial_augment: bool = False,
        random_erasing: float = 0.0,
        erasing_mode: str = "const",
        erasing_scale: Tuple[float, float] = (0.02, 0.33),
        erasing_ratio: Tuple[float, float] = (0.3, 3.3),
        mixup: float = 0.0,
        cutmix: float = 0.0,
        mix_prob: float = 1.0,
        mix_switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        views: int = 1,
        size_schedule: Optional[Tuple[int, int, int, int, int]] = None,
    ) -> None:
        """recipe: "paper" (random crop-sized patches of the stored images, §4.1) or "rrc"
        (torchvision's RandomResizedCrop of the whole image to crop×crop, with scale and ratio;
        evaluation: short side to crop / crop_fraction, centre crop; decode "crop" decodes only
        the window at a reduced DCT scale, "exact" decodes whole; interpolation "bilinear" (the
        default), "bicubic" (Pillow's) or "random" (either per sample, timm's
        --train-interpolation random; evaluation then uses bicubic)). Defaults per recipe:
        lighting 0.1 and mean "image" for "paper", 0 and "imagenet" for "rrc".
        recipe="timm": timm's ImageNet training defaults (RRC with interpolation "random", flip,
        color_jitter 0.4, ImageNet normalisation, label_smoothing 0.1 as soft labels), the options
        below overriding them.
        The "rrc" recipe's optional training ops (docs/ENGINE.md), as torchvision.transforms.v2 and
        timm define them: color_jitter (timm's form: one value for brightness, contrast and
        saturation, or 3 or 4 values with hue; random order per sample), trivial_augment
        (TrivialAugmentWide, 31 bins, nearest, fill 0), random_erasing (probability; erasing_mode
        "const" 0, "rand" per channel or "pixel" per value N(0, 1), on the normalised output: f32
        layout only), mixup / cutmix (the α of timm's batch-mode Mixup with mix_prob,
        mix_switch_prob, label_smoothing; f32 layout only): the labels are then the float32
        [N, classes] soft labels, the integer ones in the debug dict's "labels". debug=True adds
        each sample's draws: "jitter" (factors, NaN when off), "jitter_order", "trivial_op",
        "trivial_magnitude", "erase" (x, y, w, h; -1 when not erased), "filter" ("bilinear" or
        "bicubic": the resize filter of the rrc window) and the batch's "mix_lam",
        "mix_box" (y0, y1, x0, x1 or None). views: augmented views of each record in a
        training batch (each with its own draws and label; N = views × records).
        size_schedule: (min, max, start_epoch, end_epoch, multiple), FFCV's progressive
        resizing of the training output side per epoch (e.g. (160, 192, 11, 13, 32)).
        mean: "image" subtracts the training set's mean image (paper §2; inputs stay in levels,
        about ±128 — what the paper's AlexNet and its init expect, not a torchvision model);
        "channel" subtracts the dataset's channel mean and divides by its std (unit scale);
        "imagenet" uses torchvision's ImageNet mean/std (what torchvision models expect).
        indices: serve only these records (in this order unless shuffled), each with the
        draws the full loader gives it. stats_from: normalise with that dataset's statistics
        (the training set's, for validation: paper §2).
        order: "global" (a permutation of all records) or "shards" (the shards in a random order,
        records shuffled within runs of shard_window shards: what a streaming cache wants).
        source may be an http(s):// or s3:// URL: shards are fetched into cache_dir, at most
        cache_bytes of them (docs/STREAMING.md)."""
    def __len__(self) -> int: ...
    def set_epoch(self, epoch: int) -> None: ...
    @property
    def epoch(self) -> int: ...
    @property
    def dataset(self) -> Dataset: ...
    def drain_epoch(self) -> Tuple[int, float]:
        """Runs the current epoch inside Rust (no Python per batch); returns (images, seconds)."""
    def __iter__(self) -> LoaderIter: ...

class LoaderIter(Iterator[Tuple[Any, ...]]):
    def __next__(self) -> Tuple[Any, ...]: ...
    @property
    def waited(self) -> float:
        """Seconds spent waiting for batches so far in this epoch."""
