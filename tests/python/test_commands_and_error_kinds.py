"""The one command line (`alexpipe build | stats | convert | verify | info`, `build-shards` = build)
and errors by kind, in the CLI and in Python. Oracles: the independent format reader
(alexpipe_format), numpy, and the fixtures' own files."""

import json
import subprocess

import alexpipe
import numpy as np
import pytest
from alexpipe_format import Dataset as FormatReader
from conftest import ROOT, run_build

FIXTURES = ROOT / "fixtures" / "images"
ALEXPIPE = ROOT / "target" / "release" / "alexpipe"


def cli(*args, check=True):
    proc = subprocess.run([str(ALEXPIPE), *map(str, args)], capture_output=True, text=True, timeout=300)
    assert "panicked" not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, f"alexpipe {args} failed:\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmd") / "ds"
    run_build(FIXTURES, out, "--size", "48", "--shard-size", "7")
    return out


def test_build_is_build_shards_under_one_name(dataset, tmp_path):
    out = tmp_path / "again"
    cli("build", FIXTURES, out, "--size", "48", "--shard-size", "7", "--quiet")
    a, b = FormatReader(dataset), FormatReader(out)
    assert [r for r in a.records] == [r for r in b.records], "same records, byte for byte"
    for name in ["index.tsv", "rejects.tsv", "mean_image.npy"]:
        assert (dataset / name).read_bytes() == (out / name).read_bytes(), name
    assert a.manifest["stats"] == b.manifest["stats"]


def test_info_says_what_the_dataset_holds(dataset):
    info = json.loads(cli("info", dataset, "--json", "--records").stdout)
    reader = FormatReader(dataset)
    m = reader.manifest
    assert info["format"] == "shards" and info["mode"] == "raw" and info["size"] == 48
    assert info["num_records"] == len(reader) and info["classes"] == m["classes"]
    assert info["class_counts"] == m["class_counts"] and info["rejected"] == m["rejected"] == 1
    for key in ["channel_mean", "channel_std", "covariance", "eigvals", "eigvecs", "images"]:
        assert info["stats"][key] == m["stats"][key], key
    # Where each record came from: the build's index, one row per record, files that exist.
    rows = reader.index()
    assert [r["record"] for r in info["records"]] == list(range(len(reader)))
    assert [(r["label"], r["path"]) for r in info["records"]] == [(row[1], row[4]) for row in rows]
    assert all((FIXTURES / r["path"]).is_file() for r in info["records"])
    text = cli("info", dataset).stdout
    assert f"{len(reader)} records" in text and "eigvecs" in text


def test_verify_passes_then_names_the_corrupt_shard(dataset, tmp_path):
    assert json.loads(cli("verify", dataset, "--json").stdout)["records_checked"] == len(FormatReader(dataset))
    bad = tmp_path / "bad"
    cli("build", FIXTURES, bad, "--size", "48", "--shard-size", "7", "-q")
    shard = bad / "shard-00002.bin"
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0x40
    shard.write_bytes(bytes(data))
    proc = cli("verify", bad, check=False)
    assert proc.returncode != 0
    assert "shard-00002.bin" in proc.stderr and "rebuild" in proc.stderr, proc.stderr
    # Python: the same corruption is a CorruptDataError, an AlexpipeError.
    with pytest.raises(alexpipe.CorruptDataError, match="shard-00002.bin"):
        alexpipe.Dataset(bad).verify()
    assert issubclass(alexpipe.CorruptDataError, alexpipe.AlexpipeError)


def test_stats_recomputes_what_numpy_computes(dataset, tmp_path):
    out = tmp_path / "s"
    cli("build", FIXTURES, out, "--size", "48", "-q")
    summary = json.loads(cli("stats", out, "--json", "-q").stdout)
    pixels = np.stack([FormatReader(out).pixels(i)[0] for i in range(len(FormatReader(out)))]).astype(np.float64)
    flat = pixels.reshape(-1, 3)
    np.testing.assert_allclose(summary["channel_mean"], flat.mean(axis=0), rtol=0, atol=1e-9)
    np.testing.assert_allclose(summary["covariance"], np.cov(flat.T, bias=True), rtol=1e-9, atol=1e-6)
    # The old spelling still works and writes the same statistics.
    proc = run_build(out, "--stats-only", "--json")
    assert json.loads(proc.stdout)["eigvals"] == summary["eigvals"]


def test_bad_arguments_are_usage_errors_with_the_fix(dataset, tmp_path):
    proc = cli("build", FIXTURES, tmp_path / "x", "--mode", "png", check=False)
    assert proc.returncode != 0 and "use raw, jpeg or original" in proc.stderr, proc.stderr
    proc = cli("build", FIXTURES, tmp_path / "x", "--format", "zip", check=False)
    assert proc.returncode != 0 and "use shards or hdf5" in proc.stderr, proc.stderr
    proc = cli("info", tmp_path / "nothing", check=False)
    assert proc.returncode != 0 and "manifest.json" in proc.stderr
    with pytest.raises(ValueError, match="use raw, jpeg or original"):
        alexpipe.build_shards(FIXTURES, tmp_path / "y", mode="png")
    with pytest.raises(ValueError, match="mean"):
        alexpipe.Loader(dataset, mean="median")


def test_python_errors_come_by_kind(dataset, tmp_path):
    ds = alexpipe.Dataset(dataset)
    with pytest.raises(IndexError):
        ds[len(ds)]
    # Not a dataset: a format error (an AlexpipeError), naming the file and the fix.
    with pytest.raises(alexpipe.DatasetFormatError, match="manifest.json"):
        alexpipe.Dataset(tmp_path)
    # A shard that cannot be opened is the operating system's error, kept with its path.
    broken = tmp_path / "missing-shard"
    cli("build", FIXTURES, broken, "--size", "48", "--shard-size", "7", "-q")
    (broken / "shard-00001.bin").unlink()
    with pytest.raises(FileNotFoundError, match="shard-00001.bin"):
        alexpipe.Dataset(broken)
    # strict builds: the input that could not be used, by kind.
    with pytest.raises(alexpipe.RejectedInputError, match="broken_truncated.jpg"):
        alexpipe.build_shards(FIXTURES, tmp_path / "strict", size=48, strict=True, progress=False)


def test_imagenet_normalisation_by_name_matches_torchvision_constants(dataset):
    """`mean="imagenet"`: what a torchvision model expects, (x/255 - mean) / std per channel."""
    ds = alexpipe.Dataset(dataset)
    loader = alexpipe.Loader(dataset, batch_size=8, train=False, shuffle=False, drop_last=False, crop=32, mean="imagenet")
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float64)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float64)
    off = (48 - 32) // 2
    seen = 0
    for images, labels in loader:
        for k in range(len(labels)):
            pixels, label = ds[seen]
            assert label == labels[k]
            patch = pixels[off : off + 32, off : off + 32].astype(np.float64) / 255.0
            want = ((patch - mean) / std).transpose(2, 0, 1)
            np.testing.assert_allclose(images[k], want, rtol=0, atol=2e-5)
            seen += 1
    assert seen == len(ds)
