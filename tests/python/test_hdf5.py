"""HDF5 both ways, against h5py and numpy: files written by h5py (chunked, contiguous, gzip, custom
keys, no statistics) read by alexpipe give numpy's pixels, statistics and batches; files written by
alexpipe (build_shards(format="hdf5"), build-shards --format hdf5, convert) read by h5py have the
expected shapes, dtypes, labels, class names and statistics; shards -> HDF5 -> shards is
byte-identical; truncated and mis-shaped files raise errors naming the file and the fix."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import BIN, FIXTURES, ROOT, numpy_stats, run_build

import h5py
import alexpipe

S = 64
CONVERT = BIN.parent / "alexpipe"


def make_images(n=24, size=S, seed=0):
    """Smooth random RGB images (so the statistics are not degenerate) and labels 0..2."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    imgs = []
    for _ in range(n):
        a, b, c = rng.uniform(0, 255, 3)
        base = np.stack([a * xx, b * yy, c * (1 - xx * yy)], axis=-1)
        imgs.append(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))
    return np.stack(imgs), rng.integers(0, 3, n).astype(np.int64)


def write_h5py(path, images, labels, layout="chunked", images_key="images", labels_key="labels"):
    with h5py.File(path, "w") as f:
        kw = {
            "chunked": dict(chunks=(1,) + images.shape[1:]),
            "contiguous": {},
            "gzip": dict(chunks=(4,) + images.shape[1:], compression="gzip", compression_opts=4),
        }[layout]
        f.create_dataset(images_key, data=images, **kw)
        f.create_dataset(labels_key, data=labels.astype(np.int32))
    return path


@pytest.mark.parametrize("layout", ["chunked", "contiguous", "gzip"])
def test_h5py_file_reads_like_numpy(tmp_path, layout):
    images, labels = make_images()
    path = write_h5py(tmp_path / f"{layout}.h5", images, labels, layout, "x", "y")
    ds = alexpipe.Dataset(path, images_key="x", labels_key="y")
    assert ds.is_hdf5 and len(ds) == len(images) and ds.size == S and ds.mode == "raw"
    assert ds.classes == ["0", "1", "2"]
    for i in (0, 7, len(images) - 1):
        px, label = ds[i]
        np.testing.assert_array_equal(px, images[i])
        assert label == labels[i]
    mean_image, mean, std, _, eigvals, _ = numpy_stats(images)
    np.testing.assert_allclose(ds.mean_image, mean_image, atol=1e-3)
    np.testing.assert_allclose(ds.channel_mean, mean, rtol=1e-9)
    np.testing.assert_allclose(ds.channel_std, std, rtol=1e-9)
    np.testing.assert_allclose(ds.eigvals, eigvals, rtol=1e-9)

    # Batches: centre crop, u8, and the paper's f32 path against numpy from the batch's parameters.
    loader = alexpipe.Loader(ds, batch_size=5, train=False, layout="u8_nhwc", crop=48, shuffle=False)
    c = (S - 48) // 2
    for k, (batch, blabels) in enumerate(loader):
        idx = np.arange(k * 5, k * 5 + 5)
        np.testing.assert_array_equal(batch, images[idx, c : c + 48, c : c + 48])
        np.testing.assert_array_equal(blabels, labels[idx])
    loader = alexpipe.Loader(ds, batch_size=6, crop=48, debug=True, seed=5)
    for batch, blabels, info in loader:
        want = []
        for i, x, y, flip, alpha in zip(info["indices"], info["x"], info["y"], info["flip"], info["alpha"]):
            patch = images[i, y : y + 48, x : x + 48].astype(np.float64)
            delta = ds.eigvecs @ (alpha.astype(np.float64) * np.sqrt(ds.eigvals))
            v = patch + delta - ds.mean_image[y : y + 48, x : x + 48]
            want.append((v[:, ::-1] if flip else v).transpose(2, 0, 1))
        np.testing.assert_allclose(batch, np.stack(want), rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(blabels, labels[info["indices"]])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("h5")
    alexpipe.build_shards(FIXTURES, d / "sh", size=S, progress=False, shard_size=8)
    summary = alexpipe.build_shards(FIXTURES, d / "b.h5", size=S, progress=False, format="hdf5")
    assert summary["records"] == 31 and summary["rejected"] == 1
    return d


def test_alexpipe_file_reads_in_h5py(built):
    sh = alexpipe.Dataset(built / "sh")
    with h5py.File(built / "b.h5", "r") as f:
        assert f["images"].shape == (31, S, S, 3) and f["images"].dtype == np.uint8
        assert f["images"].chunks == (1, S, S, 3) and f["images"].compression is None
        assert f["labels"].shape == (31,) and f["labels"].dtype == np.int64
        assert [c.decode() for c in f["class_names"][:]] == sh.classes
        np.testing.assert_array_equal(f["labels"][:], [sh[i][1] for i in range(31)])
        for i in (0, 13, 30):
            np.testing.assert_array_equal(f["images"][i], sh[i][0])
        assert f["mean_image"].shape == (S, S, 3) and f["mean_image"].dtype == np.float32
        np.testing.assert_array_equal(f["mean_image"][:], sh.mean_image)
        for k in ("channel_mean", "channel_std", "eigvals", "eigvecs", "covariance"):
            np.testing.assert_array_equal(f[k][:], getattr(sh, k), err_msg=k)
        assert f.attrs["format"] == "alexpipe-hdf5" and f.attrs["size"] == S
        assert f.attrs["stats_images"] == 31
        # Statistics against numpy, from h5py's own reading of the images.
        mean_image, mean, std, _, eigvals, _ = numpy_stats(f["images"][:])
        np.testing.assert_allclose(f["mean_image"][:], mean_image, atol=1e-3)
        np.testing.assert_allclose(f["channel_mean"][:], mean, rtol=1e-9)
        np.testing.assert_allclose(f["channel_std"][:], std, rtol=1e-9)
        np.testing.assert_allclose(f["eigvals"][:], eigvals, rtol=1e-9)
        assert "broken_truncated.jpg" in f["rejects_tsv"][()].decode()


def test_loader_from_an_hdf5_path_equals_the_shards(built):
    for layout in ("f32_nchw", "u8_nhwc"):
        a = [(x.copy(), y.copy()) for x, y in alexpipe.Loader(built / "sh", batch_size=8, crop=56, seed=2, layout=layout)]
        b = [(x.copy(), y.copy()) for x, y in alexpipe.Loader(str(built / "b.h5"), batch_size=8, crop=56, seed=2, layout=layout)]
        assert len(a) == len(b) == 31 // 8
        for (xa, ya), (xb, yb) in zip(a, b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)


def test_cli_build_and_convert_round_trip(built, tmp_path):
    run_build(FIXTURES, tmp_path / "cli.h5", "--size", S, "--format", "hdf5")
    with h5py.File(tmp_path / "cli.h5", "r") as f:
        assert f["images"].shape == (31, S, S, 3)
    proc = run_build(FIXTURES, tmp_path / "bad.h5", "--format", "hdf5", "--mode", "jpeg", check=False)
    assert proc.returncode != 0 and "--format hdf5 stores raw pixels" in proc.stderr
    conv = lambda *a: subprocess.run([str(CONVERT), "convert", "-q", *map(str, a)], capture_output=True, text=True)  # noqa: E731
    assert conv(built / "sh", tmp_path / "c.h5").returncode == 0
    assert conv(tmp_path / "c.h5", tmp_path / "back").returncode == 0
    names = sorted(p.name for p in (built / "sh").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "back").iterdir())
    for n in names:
        assert (built / "sh" / n).read_bytes() == (tmp_path / "back" / n).read_bytes(), n
    p = conv(tmp_path / "nothing", tmp_path / "x.h5")
    assert p.returncode != 0 and "neither an HDF5 file nor an alexpipe dataset" in p.stderr


def test_python_convert_of_a_foreign_file(tmp_path):
    images, labels = make_images(n=10)
    src = write_h5py(tmp_path / "in.h5", images, labels, "gzip", "imgs", "lbl")
    assert alexpipe.convert(src, tmp_path / "sh", images_key="imgs", labels_key="lbl", shard_size=4) == 10
    ds = alexpipe.Dataset(tmp_path / "sh")
    assert not ds.is_hdf5 and len(ds) == 10
    np.testing.assert_array_equal(np.stack([ds[i][0] for i in range(10)]), images)
    assert [ds[i][1] for i in range(10)] == list(labels)
    assert alexpipe.convert(tmp_path / "sh", tmp_path / "out.h5") == 10
    with h5py.File(tmp_path / "out.h5", "r") as f:
        np.testing.assert_array_equal(f["images"][:], images)
        np.testing.assert_array_equal(f["labels"][:], labels)


def test_bad_files_raise_clear_errors(tmp_path):
    images, labels = make_images(n=6)
    good = write_h5py(tmp_path / "good.h5", images, labels)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(alexpipe.AlexpipeError, match=r"cut\.h5.*truncated"):
        alexpipe.Dataset(cut)
    with pytest.raises(alexpipe.AlexpipeError, match=r"no dataset \"pixels\".*images.*--images-key"):
        alexpipe.Dataset(good, images_key="pixels")
    cases = {
        "wide.h5": (np.zeros((2, 8, 9, 3), np.uint8), np.zeros(2, np.int64), r"wide\.h5.*N×S×S×3"),
        "gray.h5": (np.zeros((2, 8, 8), np.uint8), np.zeros(2, np.int64), r"gray\.h5.*N×S×S×3"),
        "float.h5": (np.zeros((2, 8, 8, 3), np.float32), np.zeros(2, np.int64), r"float\.h5.*uint8"),
        "short.h5": (np.zeros((2, 8, 8, 3), np.uint8), np.zeros(3, np.int64), r"short\.h5.*shape \(2,\)"),
        "neg.h5": (np.zeros((2, 8, 8, 3), np.uint8), np.array([0, -1]), r"neg\.h5.*-1"),
        "flt.h5": (np.zeros((2, 8, 8, 3), np.uint8), np.zeros(2, np.float32), r"flt\.h5.*integers"),
    }
    for name, (im, lb, pattern) in cases.items():
        with h5py.File(tmp_path / name, "w") as f:
            f["images"], f["labels"] = im, lb
        with pytest.raises(alexpipe.AlexpipeError, match=pattern):
            alexpipe.Dataset(tmp_path / name)
