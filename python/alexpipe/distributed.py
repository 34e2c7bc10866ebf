"""One dataset built on many machines: every machine builds one part of the same input
(``build_shards(input, part_dir, part="K/N")``), and ``merge_parts`` joins the parts into the
dataset a build in one go makes, byte for byte — records, ``index.tsv``, ``rejects.tsv``, the mean
image and the eigenbasis (the statistics are exact integer sums, added). ``build_on_ray`` runs the
parts as Ray tasks and merges them; Ray is an optional dependency (``pip install ray``). Any other
scheduler does the same with the command line (a SLURM array job: docs/DISTRIBUTED.md).
"""

import shutil
from pathlib import Path
from typing import Any, Dict

from . import _alexpipe

__all__ = ["build_on_ray", "part_dir"]

# Options of build_shards that name files: made absolute here, since a Ray worker's working
# directory is not the driver's.
_PATH_OPTIONS = ("root", "class_names")


def part_dir(work_dir, index: int, count: int) -> Path:
    """Where part ``index`` of ``count`` is built under ``work_dir``."""
    return Path(work_dir) / f"part-{index:05d}-of-{count:05d}"


def _build_part(input: str, out: str, part: str, options: Dict[str, Any]) -> Dict[str, Any]:
    """One Ray task: part ``part`` of ``input`` into ``out``."""
    return _alexpipe.build_shards(input, out, part=part, progress=False, **options)


def _absolute(input) -> str:
    """``input`` as every node names it: a local path (or pattern) made absolute, a URL as it is."""
    text = str(input)
    return text if "://" in text else str(Path(text).resolve())


def build_on_ray(
    input,
    out,
    parts: int,
    *,
    work_dir=None,
    num_cpus: int = 1,
    keep_parts: bool = False,
    **options: Any,
) -> Dict[str, Any]:
    """Builds ``input`` (any ``build_shards`` input: an image folder, a list file, WebDataset tars,
    parquet files; tars and parquet are cut by whole files) into the dataset ``out`` as ``parts``
    Ray tasks of ``num_cpus`` CPUs each (``threads=num_cpus`` unless ``options`` says), then merges
    the parts into ``out``. ``options`` are ``build_shards``'s (size, mode, shard_size, …), the same
    for every part. The parts go to ``work_dir`` (default ``OUT.parts``), deleted after the merge
    unless ``keep_parts``. Every path must be on a filesystem every node of the cluster sees (on
    one machine, any path). Uses the running Ray session (``ray.init(...)`` first to join a
    cluster), or starts a local one. Returns the merge's summary dict with ``part_summaries``,
    the parts' build summaries in part order. A failed part raises its error (as Ray re-raises it)
    and nothing is written to ``out``."""
    try:
        import ray
    except ImportError as e:
        raise ImportError("alexpipe.distributed.build_on_ray needs Ray: pip install ray") from e
    if int(parts) < 1:
        raise ValueError(f"parts={parts}: give at least 1 part")
    parts = int(parts)
    out = Path(out).resolve()
    work = Path(work_dir).resolve() if work_dir is not None else out.with_name(out.name + ".parts")
    work.mkdir(parents=True, exist_ok=True)
    options.setdefault("threads", num_cpus)
    for key in _PATH_OPTIONS:
        if options.get(key) is not None:
            options[key] = str(Path(options[key]).resolve())
    if not ray.is_initialized():
        ray.init()
    task = ray.remote(num_cpus=num_cpus)(_build_part)
    dirs = [part_dir(work, k, parts) for k in range(1, parts + 1)]
    pending = [
        task.remote(_absolute(input), str(d), f"{k}/{parts}", dict(options))
        for k, d in enumerate(dirs, start=1)
    ]
    part_summaries = ray.get(pending)
    summary = _alexpipe.merge_parts([str(d) for d in dirs], str(out))
    summary["part_summaries"] = part_summaries
    if not keep_parts:
        for d in dirs:
            shutil.rmtree(d)
        try:
            work.rmdir()
        except OSError:
            pass  # the user's own work_dir, holding other files: left as it was
    return summary
