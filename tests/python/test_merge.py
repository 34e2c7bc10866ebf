"""A build of real photos spread over machines: `build-shards --part K/N` then `alexpipe merge`
(and `alexpipe.distributed.build_on_ray` on a local Ray cluster) against the same build in one go:
every file byte-identical (the manifest after its `created_unix`), the statistics identical and
equal to numpy's over the merged records; and the merges that must be refused. The same for the
photos as WebDataset tars written by webdataset.ShardWriter (local, and served by nginx) and as
parquet files written by Hugging Face datasets, which parts cut by whole files."""

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

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


@pytest.fixture(scope="module")
def containers(photo_corpus, tmp_path_factory):
    """The photo corpus in class order (so the last class is only in the last files) as
    WebDataset tars written by webdataset.ShardWriter (7 samples a tar, the label in `cls`, no
    class names: the labels name the classes) and as parquet files written by Hugging Face
    datasets (Image and ClassLabel features, 4 files of 6 rows, one image cell null); and the
    one-go build of each."""
    wds = require("webdataset", "WebDataset shards are written by webdataset.ShardWriter")
    datasets = require("datasets", "parquet inputs are written by Hugging Face datasets")
    root = tmp_path_factory.mktemp("containers")
    files = sorted(photo_corpus.rglob("*.jpg"))
    samples = [(f"s{i:03d}", int(p.parent.name.removeprefix("class")), p.read_bytes()) for i, p in enumerate(files)]
    (root / "wds").mkdir()
    with wds.ShardWriter(str(root / "wds" / "shard-%06d.tar"), maxcount=7, verbose=0) as sink:
        for key, label, data in samples:
            sink.write({"__key__": key, "jpg": data, "cls": label})
    assert len(list((root / "wds").glob("*.tar"))) == 4
    names = ["class0", "class1", "class2"]
    images = [{"bytes": data, "path": f"{key}.jpg"} for key, _, data in samples]
    images[9] = None  # file 1, row 3: a reject naming its row
    table = (
        datasets.Dataset.from_dict({"image": images, "label": [s[1] for s in samples]})
        .cast_column("image", datasets.Image())
        .cast_column("label", datasets.ClassLabel(names=names))
    )
    for k in range(4):
        table.shard(4, k, contiguous=True).to_parquet(str(root / "pq" / f"train-{k:05d}-of-00004.parquet"))
    inputs = {"tars": str(root / "wds" / "shard-*.tar"), "parquet": str(root / "pq" / "train-*.parquet")}
    for kind, input in inputs.items():
        run_build(input, root / f"one-go-{kind}", *OPTIONS)
    return SimpleNamespace(root=root, samples=samples, names=names, inputs=inputs)


def sample_of(containers, path):
    """The sample an index.tsv path names: `…/shard-000001.tar:s008.jpg` or
    `…/train-00001-of-00004.parquet:row 2` (6 rows a file)."""
    if ".tar:" in path:
        return int(path.rsplit(":s", 1)[1].split(".")[0])
    name, row = path.rsplit(":row ", 1)
    return int(name.rsplit("/train-", 1)[1][:5]) * 6 + int(row)


def assert_written_labels(containers, dataset, classes):
    """Every record's label and class name are those of the sample it came from, the class names
    `classes`; every sample is a record or a reject."""
    ds = Dataset(dataset)
    assert ds.manifest["classes"] == classes
    for _, label, cls, _, path in ds.index():
        assert label == containers.samples[sample_of(containers, path)][1] and cls == classes[label], path
    assert len(ds) + len(ds.rejects()) == len(containers.samples)


@pytest.mark.parametrize("kind,count", [("tars", 2), ("tars", 3), ("tars", 5), ("parquet", 3), ("parquet", 5)])
def test_tars_and_parquet_are_cut_by_whole_files_and_merge_into_the_one_go_build(containers, kind, count, tmp_path):
    parts = build_parts(containers.inputs[kind], tmp_path, count)
    merge(*reversed(parts), tmp_path / "merged")
    one_go = containers.root / f"one-go-{kind}"
    assert_same_dataset(tmp_path / "merged", one_go)
    classes = ["0", "1", "2"] if kind == "tars" else containers.names
    assert_written_labels(containers, one_go, classes)
    rejects = [(Path(p).name, k) for p, k, _ in Dataset(one_go).rejects()]
    if kind == "tars":
        assert [k for _, k in rejects] == ["corrupt"]  # the JPEG cut short
        # The labels name the classes: a part knows those up to its own largest label, and the
        # first parts (the first tars hold class 0 and 1 only) fewer than the merge.
        known = [Dataset(p).manifest["classes"] for p in parts]
        assert all(k == classes[: len(k)] for k in known) and len(known[0]) < len(classes), known
    else:
        assert ("train-00001-of-00004.parquet:row 3", "no-image") in rejects and len(rejects) == 2
    # Four files in five parts: one part is empty, and merges all the same.
    assert any(len(Dataset(p)) == 0 for p in parts) == (count == 5)


def test_remote_tars_are_cut_by_whole_tars_and_a_part_fetches_only_its_own(containers, tmp_path):
    from servers import nginx, requests_for

    with nginx(containers.root / "wds", tmp_path / "nginx") as (base, log):
        url = f"{base}/shard-{{000000..000003}}.tar"
        run_build(url, tmp_path / "one-go", *OPTIONS)
        assert [requests_for(log, f"shard-{t:06d}.tar") for t in range(4)] == [1, 1, 1, 1]
        # Part K of 3 takes tars ⌊(K−1)·4/3⌋ .. ⌊K·4/3⌋: {0}, {1}, {2, 3}.
        seen = []
        parts = []
        for k in range(1, 4):
            parts.append(tmp_path / f"part-{k}")
            run_build(url, parts[-1], *OPTIONS, "--part", f"{k}/3")
            seen.append([requests_for(log, f"shard-{t:06d}.tar") - 1 for t in range(4)])
        assert seen == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    merge(*parts, tmp_path / "merged")
    assert_same_dataset(tmp_path / "merged", tmp_path / "one-go")
    assert Dataset(tmp_path / "merged").index()[0][4] == f"{base}/shard-000000.tar:s000.jpg"


def test_parts_of_different_tar_lists_are_refused(containers, tmp_path):
    wds = tmp_path / "wds"
    shutil.copytree(containers.root / "wds", wds)
    input = str(wds / "shard-*.tar")
    first = tmp_path / "machine-1"
    run_build(input, first, *OPTIONS, "--part", "1/2")
    # Machine 2 sees another last tar under the same name (another size), then one tar fewer.
    shutil.copy(wds / "shard-000000.tar", wds / "shard-000003.tar")
    other = tmp_path / "machine-2"
    run_build(input, other, *OPTIONS, "--part", "2/2")
    (wds / "shard-000003.tar").unlink()
    fewer = tmp_path / "machine-2-fewer"
    run_build(input, fewer, *OPTIONS, "--part", "2/2")
    for second, files in [(other, "4 files"), (fewer, "3 files")]:
        proc = merge(first, second, tmp_path / "merged", check=False)
        assert proc.returncode != 0, proc.stderr
        assert str(second) in proc.stderr and "its input lists other files" in proc.stderr, proc.stderr
        assert files in proc.stderr, proc.stderr
    assert not (tmp_path / "merged").exists()
