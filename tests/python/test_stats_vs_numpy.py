"""Training-set statistics (paper §2 mean image, §4.1 RGB eigenbasis) against numpy."""

import json
import subprocess

import numpy as np
import pytest
from alexpipe_format import Dataset
from conftest import BIN, ROOT, numpy_stats, run_build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("stats") / "ds"
    run_build(ROOT / "fixtures" / "images", out)
    return out


def dataset_stats(ds):
    return numpy_stats(np.stack([ds.pixels(i)[0] for i in range(len(ds))]))


def test_stats_match_numpy(built):
    ds = Dataset(built)
    mean_image, mean, std, cov, vals, vecs = dataset_stats(ds)
    s = ds.manifest["stats"]
    assert s["images"] == len(ds)
    assert ds.mean_image.dtype == np.float32 and ds.mean_image.shape == (256, 256, 3)
    np.testing.assert_allclose(ds.mean_image, mean_image, rtol=0, atol=1e-4)
    np.testing.assert_allclose(s["channel_mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(s["channel_std"], std, rtol=1e-10)
    np.testing.assert_allclose(s["covariance"], cov, rtol=1e-10)
    np.testing.assert_allclose(s["eigvals"], vals, rtol=1e-9)
    ours = np.array(s["eigvecs"])
    for i in range(3):  # eigenvectors are columns, equal up to sign
        dot = abs(float(ours[:, i] @ vecs[:, i]))
        assert dot == pytest.approx(1.0, abs=1e-9)
        np.testing.assert_allclose(np.linalg.norm(ours[:, i]), 1.0, atol=1e-12)
    np.testing.assert_allclose(ours @ np.diag(s["eigvals"]) @ ours.T, cov, atol=1e-6)


def test_thread_count_does_not_change_anything(tmp_path):
    run_build(ROOT / "fixtures" / "images", tmp_path / "t1", "--threads", "1")
    run_build(ROOT / "fixtures" / "images", tmp_path / "t2", "--threads", "2")
    m1 = json.loads((tmp_path / "t1" / "manifest.json").read_text())
    m2 = json.loads((tmp_path / "t2" / "manifest.json").read_text())
    for m in (m1, m2):
        m["build"].pop("created_unix")
        m.pop("manifest_crc32c")  # covers created_unix
    assert m1 == m2  # includes every shard's checksum and the exact statistics
    assert (tmp_path / "t1" / "mean_image.npy").read_bytes() == (tmp_path / "t2" / "mean_image.npy").read_bytes()


@pytest.mark.parametrize("mode", ["raw", "jpeg", "original"])
def test_stats_only_recomputes(tmp_path, mode):
    out = tmp_path / "ds"
    run_build(ROOT / "fixtures" / "images", out, "--mode", mode)
    before = json.loads((out / "manifest.json").read_text())["stats"]
    mean_before = np.load(out / "mean_image.npy")
    (out / "mean_image.npy").write_bytes(b"garbage")
    proc = subprocess.run([str(BIN), "--quiet", "--stats-only", str(out), "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    after = json.loads((out / "manifest.json").read_text())["stats"]
    assert json.loads(proc.stdout)["eigvals"] == after["eigvals"]
    mean_after = np.load(out / "mean_image.npy")
    if mode == "jpeg":
        # Recomputed from the stored JPEGs (lossy re-encodings of the build's pixels): the oracle is
        # numpy over Pillow's decode of the same records.
        import io

        from PIL import Image

        ds = Dataset(out)
        imgs = np.stack([np.asarray(Image.open(io.BytesIO(rec)).convert("RGB")) for _, rec in ds.records])
        np.testing.assert_allclose(mean_after, imgs.astype(np.float64).mean(axis=0), atol=1e-4)
        np.testing.assert_allclose(after["channel_mean"], imgs.reshape(-1, 3).mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(mean_after, mean_before, atol=8.0)
    else:
        assert after == before
        np.testing.assert_array_equal(mean_after, mean_before)
    Dataset(out)  # still a valid dataset, checksums included
