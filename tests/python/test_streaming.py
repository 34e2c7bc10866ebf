"""Streaming shard datasets over HTTP and S3 through a bounded cache (docs/STREAMING.md), against
real servers on 127.0.0.1 started by the tests: Debian's nginx, moto's S3 server (uploaded to
with boto3), and a fault-injecting proxy (tests/fault_proxy.py) in front of nginx. The oracle for
every batch is the same loader over the local copy of the dataset."""

import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, require, run_build
from servers import fault_proxy, moto_s3, nginx, requests_for, upload_dir

alexpipe = require("alexpipe", "build the package: maturin develop -m python/Cargo.toml")

LOADER = dict(batch_size=4, crop=56, seed=3, threads=2, order="shards", shard_window=2, drop_last=False)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A raw dataset of the fixtures (64 px, 4 records a shard: 8 shards) under an nginx root."""
    root = tmp_path_factory.mktemp("www")
    run_build(FIXTURES, root / "ds", "--size", "64", "--shard-size", "4")
    with nginx(root, tmp_path_factory.mktemp("nginx")) as (base, log):
        yield root, base, log


def shard_sizes(ds):
    import json

    m = json.loads((Path(ds) / "manifest.json").read_text())
    return [s["bytes"] for s in m["shards"]]


def cached_bytes(cache_dir):
    """Bytes of cached shard copies (finished, or `.part` being fetched) in the directory: what the
    limit bounds (the index, its temporary copy while rewritten, and the lock file are not)."""
    return sum(f.stat().st_size for f in Path(cache_dir).iterdir() if re.match(r"[0-9a-f]{16}-", f.name))


def batches(loader):
    return [(np.array(images), np.array(labels)) for images, labels in loader]


def assert_same(got, want):
    assert len(got) == len(want)
    for k, ((gi, gl), (wi, wl)) in enumerate(zip(got, want)):
        assert np.array_equal(gl, wl), f"batch {k} labels"
        assert np.array_equal(gi, wi), f"batch {k} images"


class DirWatch:
    """Measures the cache directory every millisecond while it runs: the largest size seen."""

    def __init__(self, path):
        self.path, self.largest, self.stop = path, 0, False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop:
            try:
                self.largest = max(self.largest, cached_bytes(self.path))
            except FileNotFoundError:
                pass  # a file evicted while being listed
            time.sleep(0.001)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()


def test_http_epochs_are_bit_identical_the_cache_stays_bounded_and_a_second_epoch_is_cached(served, tmp_path):
    root, base, log = served
    url = f"{base}/ds/"
    local = alexpipe.Loader(str(root / "ds"), **LOADER)
    sizes = shard_sizes(root / "ds")
    # Room for three shards of eight: the cache must evict, and never exceed the limit.
    limit = 3 * max(sizes)
    cache = tmp_path / "small"
    remote = alexpipe.Loader(url, cache_dir=str(cache), cache_bytes=limit, **LOADER)
    for epoch in (0, 1):
        local.set_epoch(epoch)
        remote.set_epoch(epoch)
        with DirWatch(cache) as watch:
            assert_same(batches(remote), batches(local))
        assert 0 < watch.largest <= limit, (watch.largest, limit)
    # A cache that holds the dataset: the second epoch, and a new process's epoch, fetch no shard.
    big = tmp_path / "big"
    remote = alexpipe.Loader(url, cache_dir=str(big), cache_bytes=sum(sizes), **LOADER)
    before = requests_for(log, "/ds/shard-")
    assert_same(batches(remote), batches(alexpipe.Loader(str(root / "ds"), **LOADER)))
    first = requests_for(log, "/ds/shard-") - before
    assert first == len(sizes), "each shard fetched once"
    remote.set_epoch(1)
    local.set_epoch(1)
    assert_same(batches(remote), batches(local))
    assert requests_for(log, "/ds/shard-") - before == first, "the second epoch came from the cache"
    del remote
    again = alexpipe.Loader(url, cache_dir=str(big), cache_bytes=sum(sizes), **LOADER)
    again.set_epoch(1)
    assert_same(batches(again), batches(local))
    assert requests_for(log, "/ds/shard-") - before == first, "a new process reuses the checked cache"


def test_global_order_and_jpeg_records_stream_identically(tmp_path):
    root = tmp_path / "www"
    run_build(FIXTURES, root / "jpeg", "--size", "64", "--shard-size", "8", "--mode", "jpeg")
    with nginx(root, tmp_path / "nginx") as (base, _):
        opts = dict(batch_size=5, crop=48, seed=9, threads=3)
        want = batches(alexpipe.Loader(str(root / "jpeg"), **opts))
        got = batches(alexpipe.Loader(f"{base}/jpeg", cache_dir=str(tmp_path / "c"), cache_bytes=2 * max(shard_sizes(root / "jpeg")), **opts))
        assert_same(got, want)
        ds = alexpipe.Dataset(f"{base}/jpeg/", cache_dir=str(tmp_path / "c2"))
        local = alexpipe.Dataset(str(root / "jpeg"))
        assert len(ds) == len(local) and ds.classes == local.classes
        assert np.array_equal(ds.mean_image, local.mean_image)
        for i in (0, len(ds) - 1):
            assert np.array_equal(ds[i][0], local[i][0]) and ds[i][1] == local[i][1]
        assert ds.verify() == len(local)


def test_s3_through_moto_is_bit_identical(served, tmp_path, monkeypatch):
    require("moto", "pip install -r requirements-dev.txt (moto[server])")
    root, _, _ = served
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with moto_s3() as endpoint:
        upload_dir(endpoint, "datasets", "fixtures/ds/", root / "ds")
        want = batches(alexpipe.Loader(str(root / "ds"), **LOADER))
        limit = 3 * max(shard_sizes(root / "ds"))
        cache = tmp_path / "s3cache"
        remote = alexpipe.Loader("s3://datasets/fixtures/ds/", cache_dir=str(cache), cache_bytes=limit, s3_endpoint=endpoint, **LOADER)
        with DirWatch(cache) as watch:
            assert_same(batches(remote), want)
        assert 0 < watch.largest <= limit
        # The endpoint from the environment, as AWS tools read it.
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        ds = alexpipe.Dataset("s3://datasets/fixtures/ds", cache_dir=str(tmp_path / "env"))
        assert len(ds) == len(alexpipe.Dataset(str(root / "ds")))
        with pytest.raises(ConnectionError, match=r"s3://datasets/nothing/here/manifest\.json.*HTTP 404"):
            alexpipe.Dataset("s3://datasets/nothing/here/", cache_dir=str(tmp_path / "none"))


def test_faults_are_retried_and_the_batches_stay_identical(served, tmp_path):
    root, base, _ = served
    plan = ["429", "ok", "500", "reset", "ok", "short", "503", "corrupt", "slow", "ok"]
    with fault_proxy(base, plan, tmp_path, slow=0.2) as (proxy, counts):
        want = batches(alexpipe.Loader(str(root / "ds"), **LOADER))
        got = batches(alexpipe.Loader(f"{proxy}/ds/", cache_dir=str(tmp_path / "c"), cache_bytes=3 * max(shard_sizes(root / "ds")), **LOADER))
        assert_same(got, want)
        served_faults = counts()
    for fault in ("429", "500", "reset", "short", "503", "corrupt", "slow"):
        assert served_faults.get(fault, 0) >= 1, served_faults


def test_faults_that_never_stop_are_a_clear_error_naming_the_url_not_a_hang(served, tmp_path):
    root, base, _ = served
    with fault_proxy(base, ["500"], tmp_path) as (proxy, counts):
        start = time.time()
        with pytest.raises(ConnectionError, match=rf"{proxy}/ds/manifest\.json: gave up after 3 attempts.*HTTP 500"):
            alexpipe.Dataset(f"{proxy}/ds/", cache_dir=str(tmp_path / "a"), retries=3)
        assert counts()["500"] == 3
    # A server that accepts and never answers: each attempt times out.
    with fault_proxy(base, ["ok", "ok"] + ["stall"] * 100, tmp_path) as (proxy, _):
        ds = alexpipe.Dataset(f"{proxy}/ds/", cache_dir=str(tmp_path / "b"), retries=2, timeout=0.5)
        with pytest.raises(ConnectionError, match=rf"{proxy}/ds/shard-\d+\.bin: gave up after 2 attempts.*(timeout|timed out)"):
            for i in range(len(ds)):
                ds[i]
        assert time.time() - start < 60


def test_a_corrupt_byte_is_never_served(served, tmp_path):
    root, base, log = served
    # On the server: every fetch of the shard fails its checksum, so it is an error naming it.
    bad = root / "bad"
    shutil.copytree(root / "ds", bad)
    victim = sorted(bad.glob("shard-*.bin"))[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    ds = alexpipe.Dataset(f"{base}/bad/", cache_dir=str(tmp_path / "a"), retries=2)
    first_of_victim = 4  # four records a shard
    assert np.array_equal(ds[0][0], alexpipe.Dataset(str(root / "ds"))[0][0])
    with pytest.raises(ConnectionError, match=rf"{base}/bad/{victim.name}: gave up after 2 attempts.*checksum"):
        ds[first_of_victim]
    # In the cache, after it was checked: the record's checksum catches it, the shard is fetched
    # again, and the batches stay identical.
    cache = tmp_path / "b"
    sizes = shard_sizes(root / "ds")
    remote = alexpipe.Loader(f"{base}/ds/", cache_dir=str(cache), cache_bytes=sum(sizes), **LOADER)
    local = alexpipe.Loader(str(root / "ds"), **LOADER)
    assert_same(batches(remote), batches(local))
    copy = next(cache.glob("*-shard-00002.bin"))
    data = bytearray(copy.read_bytes())
    data[-100] ^= 0xFF  # inside the shard's last record
    copy.write_bytes(bytes(data))
    before = requests_for(log, "/ds/shard-00002.bin")
    remote.set_epoch(1)
    local.set_epoch(1)
    assert_same(batches(remote), batches(local))
    assert requests_for(log, "/ds/shard-00002.bin") == before + 1


def test_cache_limits_and_directories_are_checked(served, tmp_path):
    root, base, _ = served
    smallest_ok = max(shard_sizes(root / "ds"))
    with pytest.raises(ValueError, match=r"cannot hold shard .* at least \d+ bytes"):
        alexpipe.Loader(f"{base}/ds/", cache_dir=str(tmp_path / "c"), cache_bytes=smallest_ok - 1, **LOADER)
    # A limit of exactly one shard works (slowly): no deadlock, identical batches.
    one = batches(alexpipe.Loader(f"{base}/ds/", cache_dir=str(tmp_path / "one"), cache_bytes=smallest_ok, **LOADER))
    assert_same(one, batches(alexpipe.Loader(str(root / "ds"), **LOADER)))
    # Never a file that is not a cached copy: a directory of the user's is refused, untouched.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="not an alexpipe cache"):
        alexpipe.Dataset(f"{base}/ds/", cache_dir=str(mine))
    assert (mine / "thesis.tex").read_text() == "precious"
    # One process per cache directory.
    held = alexpipe.Dataset(f"{base}/ds/", cache_dir=str(tmp_path / "held"))
    with pytest.raises(ValueError, match="in use by another process"):
        alexpipe.Dataset(f"{base}/ds/", cache_dir=str(tmp_path / "held"))
    del held


def test_shard_order_resumes_exactly(served):
    root, _, _ = served
    opts = dict(LOADER, drop_last=True)
    full = batches(alexpipe.Loader(str(root / "ds"), **opts))
    loader = alexpipe.Loader(str(root / "ds"), **opts)
    it = iter(loader)
    for _ in range(3):
        next(it)
    state = loader.state_dict()
    del it
    resumed = alexpipe.Loader(str(root / "ds"), **opts)
    resumed.load_state_dict(state)
    assert_same(batches(resumed), full[3:])
    # A state of the global order does not resume a shard-order loader (and the other way).
    with pytest.raises(ValueError, match="order"):
        alexpipe.Loader(str(root / "ds"), **dict(opts, order="global")).load_state_dict(state)


def test_the_command_line_opens_urls(served, tmp_path):
    import json
    import subprocess

    from conftest import ROOT

    root, base, _ = served
    alexpipe_bin = ROOT / "target" / "release" / "alexpipe"
    cache = tmp_path / "cli"
    out = subprocess.run([str(alexpipe_bin), "info", f"{base}/ds/", "--json", "--cache-dir", str(cache), "--cache-bytes", "1M"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["num_records"] == len(alexpipe.Dataset(str(root / "ds")))
    ok = subprocess.run([str(alexpipe_bin), "verify", f"{base}/ds/", "--cache-dir", str(cache)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "ok" in ok.stdout, ok.stderr
    small = subprocess.run([str(alexpipe_bin), "info", f"{base}/ds/", "--cache-dir", str(tmp_path / "s"), "--cache-bytes", "1K"],
                           capture_output=True, text=True, timeout=120)
    assert small.returncode != 0 and "cannot hold shard" in small.stderr, small.stderr
    assert "panicked" not in small.stderr
