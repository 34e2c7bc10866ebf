"""Hostile input cannot exhaust memory during build-shards: 2 GiB files named .jpg (text, or a JPEG
header followed by nothing), header and zlib decompression bombs. Peak memory is measured on the
build process alone (a fresh Python parent, so RUSAGE_CHILDREN sees only it) and checked against the
per-worker bound stated in docs/RELIABILITY.md."""

import json
import subprocess
import sys
import zlib

from alexpipe_format import Dataset
from conftest import BIN, png_bytes
from PIL import Image

MAX_PIXELS = 4_194_304  # --max-pixels for this test: the bound scales with it


png = png_bytes


def peak_rss_bytes(args):
    """Runs build-shards under a fresh interpreter; returns (returncode, peak RSS in bytes)."""
    code = (
        "import resource, subprocess, sys, json\n"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode\n"
        "print(json.dumps([rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(BIN), "--quiet", *map(str, args)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_hostile_inputs_stay_within_the_memory_bound(tmp_path):
    root = tmp_path / "in" / "c"
    root.mkdir(parents=True)
    Image.new("RGB", (64, 48), (10, 200, 30)).save(root / "ok.jpg")
    ok = (root / "ok.jpg").read_bytes()
    with open(root / "huge_text.jpg", "wb") as f:  # sparse: cheap to make
        f.write(b"this is a text file\n" * 100)
        f.truncate(2 << 30)
    with open(root / "huge_jpeg_magic.jpg", "wb") as f:
        f.write(ok[:200])
        f.truncate(2 << 30)
    (root / "header_bomb.png").write_bytes(png(100_000, 100_000, zlib.compress(b"\0" * 64)))
    # A real zlib bomb: 6000 x 6000 RGB of zeros, 108 MB of pixels in about 100 kB.
    w = h = 6000
    (root / "zlib_bomb.png").write_bytes(png(w, h, zlib.compress(b"\0" * (h * (3 * w + 1)), 9)))
    # Within the limit: decoded, the largest legitimate allocation.
    Image.new("RGB", (2048, 2048), (5, 6, 7)).save(root / "at_limit.png")
    out = tmp_path / "ds"
    threads = 2
    rc, peak = peak_rss_bytes([tmp_path / "in", out, "--size", "64", "--threads", threads, "--max-pixels", MAX_PIXELS])
    assert rc == 0
    ds = Dataset(out)
    assert len(ds) == 2  # ok.jpg, at_limit.png
    reasons = {p: kind for p, kind, _ in ds.rejects()}
    assert reasons == {
        "c/huge_text.jpg": "not-an-image",
        "c/huge_jpeg_magic.jpg": "too-large",
        "c/header_bomb.png": "too-large",
        "c/zlib_bomb.png": "too-large",
    }, reasons
    # The stated bound per worker: the file (at most 8 * max_pixels + 64 MiB) plus decoding
    # (at most 8 bytes per pixel) plus the S x S record; plus a fixed 64 MiB for the process.
    per_worker = 8 * MAX_PIXELS + (64 << 20) + 8 * MAX_PIXELS + 3 * 64 * 64
    bound = threads * per_worker + (64 << 20)
    print(f"build-shards peak RSS {peak / 2**20:.0f} MiB, bound {bound / 2**20:.0f} MiB")
    assert peak < bound, f"peak RSS {peak / 2**20:.0f} MiB over the bound {bound / 2**20:.0f} MiB"
    assert peak < (1 << 30), "nowhere near the 2 GiB files"
