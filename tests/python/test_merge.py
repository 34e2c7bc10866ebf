"""A build of real photos spread over machines: `build-shards --part K/N` then `alexpipe merge`
(and `alexpipe.distributed.build_on_ray` on a local Ray cluster) against the same build in one go:
every file byte-identical (the manifest after its `created_unix`), the statistics identical and
equal to numpy's over the merged records; and the merges that must be refused."""

import json
import subprocess

import numpy as np
import pytest
from alexpipe_format import Dataset
from conftest import BIN, numpy_stats, require, run_build
from PIL import Image

ALEXPIPE = BIN.parent / "alexpipe"
OPTIONS = ["--size", "64", "--shard-size", "3", "--threads", "2"]


@pytest.fixture(scope="module")
def photo_corpus(tmp_path_factory, real_photos):
    """23 JPEGs cut from the real photos (3 classes, various sizes) and one broken file, so one
    part holds a reject and the records after it are re-packed."""
    root = tmp_path_factory.mktemp("merge") / "photos"
    rng = np.random.default_rng(20)
    for i in range(23):
        src = Image.open(real_photos[i % len(real_photos)]).convert("RGB")
        w, h = src.size
        cw, ch = int(w * rng.uniform(0.5, 1)), int(h * rng.uniform(0.5, 1))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        short = int(rng.integers(80, 160))
        im = src.crop((x, y, x + cw, y + ch))
        im = im.resize((max(1, short * cw // min(cw, ch)), max(1, short * ch // min(cw, ch))))
        d = root / f"class{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        im.save(d / f"photo_{i:03d}.jpg", quality=90)
    jpeg = (root / "class1" / "photo_004.jpg").read_bytes()
    (root / "class1" / "photo_007b.jpg").write_bytes(jpeg[: len(jpeg) // 3])  # cut short: a reject
    return root


@pytest.fixture(scope="module")
def one_go(photo_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("one-go") / "ds"
    run_build(photo_corpus, out, *OPTIONS)
    return out


def manifest_without_time(d):
    m = json.loads((d / "manifest.json").read_bytes())
    del m["manifest_crc32c"]
    del m["build"]["created_unix"]
    return m


def assert_same_dataset(merged, one_go):
    names = sorted(p.name for p in one_go.iterdir())
    assert sorted(p.name for p in merged.iterdir()) == names
    for name in names:
        if name == "manifest.json":
            assert manifest_without_time(merged) == manifest_without_time(one_go)
        else:
            assert (merged / name).read_bytes() == (one_go / name).read_bytes(), name


def merge(*args, check=True):
    proc = subprocess.run([str(ALEXPIPE), "merge", "--quiet", *map(str, args)], capture_output=True, text=True, timeout=300)
    assert "panicked" not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def build_parts(corpus, dir, count, *extra):
    parts = [dir / f"part-{k}" for k in range(1, count + 1)]
    for k, part in enumerate(parts, start=1):
        run_build(corpus, part, *OPTIONS, *extra, "--part", f"{k}/{count}")
    return parts


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_parts_merge_into_the_one_go_build(photo_corpus, one_go, tmp_path, count):
    parts = build_parts(photo_corpus, tmp_path, count)
    merge(*reversed(parts), tmp_path / "merged")
    assert_same_dataset(tmp_path / "merged", one_go)
    # The statistics against numpy over the merged records (an oracle independent of the sums).
    ds = Dataset(tmp_path / "merged")
    mean_image, mean, std, cov, vals, _ = numpy_stats(np.stack([ds.pixels(i)[0] for i in range(len(ds))]))
    s = ds.manifest["stats"]
    assert s["images"] == len(ds) == 23 and ds.manifest["rejected"] == 1
    np.testing.assert_allclose(ds.mean_image, mean_image, rtol=0, atol=1e-4)
    np.testing.assert_allclose(s["channel_mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(s["channel_std"], std, rtol=1e-10)
    np.testing.assert_allclose(s["covariance"], cov, rtol=1e-10)
    np.testing.assert_allclose(s["eigvals"], vals, rtol=1e-9)


def test_wrong_parts_are_refused_naming_them(photo_corpus, tmp_path):
    parts = build_parts(photo_corpus, tmp_path / "a", 3)
    out = tmp_path / "merged"
    proc = merge(parts[0], parts[2], out, check=False)
    assert proc.returncode != 0 and "part 2/3 is missing" in proc.stderr, proc.stderr
    proc = merge(parts[0], parts[1], parts[1], parts[2], out, check=False)
    assert proc.returncode != 0 and f"{parts[1]} and {parts[1]} are both part 2/3" in proc.stderr, proc.stderr
    other = tmp_path / "other"
    (other / "only").mkdir(parents=True)
    for p in sorted((photo_corpus / "class0").iterdir())[:4]:
        (other / "only" / p.name).write_bytes(p.read_bytes())
    foreign = tmp_path / "b" / "part-2"
    run_build(other, foreign, *OPTIONS, "--part", "2/3")
    proc = merge(parts[0], foreign, parts[2], out, check=False)
    assert proc.returncode != 0 and str(foreign) in proc.stderr and "its input is" in proc.stderr, proc.stderr
    assert not out.exists()


def test_build_on_ray_makes_the_one_go_dataset(photo_corpus, one_go, tmp_path):
    ray = require("ray", "the Ray driver's test needs ray (requirements-dev.txt)")
    from alexpipe.distributed import build_on_ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = build_on_ray(photo_corpus, tmp_path / "ds", parts=3, size=64, shard_size=3)
    finally:
        ray.shutdown()
    assert summary["parts"] == 3 and summary["records"] == 23
    assert sum(s["records"] for s in summary["part_summaries"]) == 23
    assert_same_dataset(tmp_path / "ds", one_go)
    assert not (tmp_path / "ds.parts").exists(), "the parts are removed after the merge"


def test_a_killed_merge_leaves_the_previous_dataset(tmp_path):
    """SIGKILL at any moment of a merge into an existing dataset leaves that dataset whole at OUT
    (or the merged one, which here is the same), never a mix; beside OUT a kill leaves at most a
    directory without a manifest, or the previous dataset on its way out (the next merge or build
    to OUT removes both)."""
    import shutil
    import signal
    import time

    from conftest import FIXTURES

    corpus = tmp_path / "in"
    for i, src in enumerate(sorted(FIXTURES.rglob("*.*")) * 10):  # 320 inputs, 10 of them broken
        d = corpus / src.parent.name
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, d / f"{i:03d}_{src.name}")
    one_go = tmp_path / "one-go"
    run_build(corpus, one_go, "--shard-size", "16")
    parts = [tmp_path / "part-1", tmp_path / "part-2"]
    for k, part in enumerate(parts, start=1):
        run_build(corpus, part, "--shard-size", "16", "--part", f"{k}/2")
    out = tmp_path / "out"
    shutil.copytree(one_go, out)
    finished = 0
    for delay in [0.005, 0.02, 0.05, 0.1, 0.2, 0.4]:
        proc = subprocess.Popen([str(ALEXPIPE), "merge", "--quiet", *map(str, parts), str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        finished += proc.wait() == 0
        assert_same_dataset(out, one_go)
        assert len(Dataset(out)) == 310
        for left in tmp_path.glob("out.*"):
            assert not (left / "manifest.json").exists() or manifest_without_time(left) == manifest_without_time(one_go)
    assert finished < 6, "every merge finished before its kill: the test killed nothing"
