import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "images"
sys.path.insert(0, str(Path(__file__).parent))

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


def require(module, reason=""):
    """Imports `module`, or skips the test when it does not import — except in CI (`CI` set), where a
    missing or broken module fails the test: a torch import broken by an upgrade must not turn the
    DDP and torch tests into skips with CI green."""
    if IN_CI:
        import importlib

        try:
            return importlib.import_module(module)
        except Exception as e:  # ImportError, or whatever a broken install raises on import
            pytest.fail(f"CI: {module} does not import ({type(e).__name__}: {e}); {reason}")
    return pytest.importorskip(module, reason=reason)


BIN = Path(os.environ.get("ALEXPIPE_BUILD_SHARDS", ROOT / "target" / "release" / "build-shards"))


def run_build(*args, check=True, timeout=600):
    """Runs build-shards; returns the CompletedProcess. Fails loudly on a panic."""
    proc = subprocess.run([str(BIN), "--quiet", *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert "panicked" not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, f"build-shards {args} failed:\n{proc.stderr}"
    return proc


@pytest.fixture(scope="session")
def real_photos():
    """Real photographs shipped inside the scikit-image and scikit-learn wheels."""
    import skimage
    import sklearn

    sk = Path(skimage.__file__).parent / "data"
    sl = Path(sklearn.__file__).parent / "datasets" / "images"
    photos = [sk / n for n in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg")]
    photos += [sl / "china.jpg", sl / "flower.jpg"]
    for p in photos:
        assert p.exists(), p
    return photos


# How far our records may be from pil_reference, per image (test_pixels_vs_pil, test_bad_input,
# test_python_package). JPEGs decode bit-identically (the same libjpeg-turbo, same IDCT), so what
# differs is only the rounding of the bilinear resize's last step: at most one level on any pixel.
# Measured on every record of those tests (2026-12-01: 51 images, real photos and their rescaled,
# progressive, grayscale, 4:4:4, PNG, upscaled, draft and 64 px variants): max 1, mean <= 0.19
# (coffee.png). A half-pixel shift, a wrong filter or a colour conversion off by one in a channel
# gives means of 0.5 and more and maxima far above 1.
PIL_MAX_DIFF = 1
PIL_MEAN_DIFF = 0.25


def pil_reference(path, size=256, draft=False):
    """torchvision Resize(size) + CenterCrop(size) on a PIL image: the oracle for our pixels."""
    im = Image.open(path)
    if draft and im.format == "JPEG":
        im.draft("RGB", (2 * size, 2 * size))
    im = im.convert("RGB")
    w, h = im.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    im = im.resize((nw, nh), Image.BILINEAR)
    left = int(round((nw - size) / 2.0))
    top = int(round((nh - size) / 2.0))
    return np.asarray(im.crop((left, top, left + size, top + size)))


def png_bytes(w, h, idat):
    """A PNG (8-bit RGB) whose header says w x h, with the given compressed IDAT payload."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def numpy_stats(images):
    """The statistics of an (N, S, S, 3) image stack in float64 numpy: mean image, channel mean and
    std, covariance, and eigenvalues (descending) with their eigenvectors (columns)."""
    x = np.asarray(images).astype(np.float64)
    px = x.reshape(-1, 3)
    cov = np.cov(px, rowvar=False, bias=True)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    return x.mean(axis=0), px.mean(axis=0), px.std(axis=0), cov, vals[order], vecs[:, order]
