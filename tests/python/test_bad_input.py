"""Bad input: a clear reason per file, nothing lost, no crash (every input lands in shards or rejects)."""

import os
import struct
import subprocess
import zlib

import numpy as np
import pytest
from alexpipe_format import Dataset
from conftest import BIN, PIL_MAX_DIFF, PIL_MEAN_DIFF, pil_reference, png_bytes, run_build
from PIL import Image


def png_header_bomb(w, h):
    """A tiny PNG whose header claims w x h pixels."""
    return png_bytes(w, h, zlib.compress(b"\0" * 64))


def jpeg_header_bomb(path_ok, w, h):
    """A real JPEG with its SOF0 dimensions rewritten to w x h."""
    data = bytearray(path_ok.read_bytes())
    i = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, i + 5, h, w)
    return bytes(data)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, real_photos):
    root = tmp_path_factory.mktemp("bad") / "in"
    good, bad = root / "good", root / "bad"
    good.mkdir(parents=True)
    bad.mkdir()
    photo = Image.open(real_photos[0]).convert("RGB").resize((400, 300))
    photo.save(good / "ok.jpg", quality=90)
    raw = (good / "ok.jpg").read_bytes()
    expect = {}  # relative path -> expected reject reason, or None for a record

    def put(rel, data, reason):
        (root / rel).write_bytes(data)
        expect[rel] = reason

    expect["good/ok.jpg"] = None
    put("bad/truncated.jpg", raw[: len(raw) // 2], "corrupt")
    put("bad/zero.jpg", b"", "empty")
    put("bad/text.jpg", b"this is not an image\n" * 10, "not-an-image")
    put("bad/bomb.png", png_header_bomb(30000, 30000), "too-large")
    put("bad/bomb.jpg", jpeg_header_bomb(good / "ok.jpg", 30000, 30000), "too-large")
    put("bad/zero_width.png", png_header_bomb(0, 10), "corrupt")
    photo.convert("CMYK").save(good / "cmyk.jpg", quality=95)
    expect["good/cmyk.jpg"] = None
    gray16 = (np.linspace(0, 65535, 300 * 200).reshape(200, 300)).astype(np.uint16)
    Image.fromarray(gray16).save(good / "gray16.png")
    expect["good/gray16.png"] = None
    pal = photo.convert("P", palette=Image.ADAPTIVE, colors=64)
    pal.info["transparency"] = 0
    pal.save(good / "palette_transparent.png", transparency=0)
    expect["good/palette_transparent.png"] = None
    photo.convert("RGBA").save(good / "rgba.png")
    expect["good/rgba.png"] = None
    Image.new("RGB", (1, 1), (200, 30, 90)).save(good / "one_pixel.png")
    expect["good/one_pixel.png"] = None
    photo.save(good / "名前 ünïcode.jpg", quality=90)
    expect["good/名前 ünïcode.jpg"] = None
    photo.save(good / "png_named.JPEG", format="PNG")
    expect["good/png_named.JPEG"] = None
    os.symlink(root / "does-not-exist.jpg", bad / "dangling.jpg")
    expect["bad/dangling.jpg"] = "unreadable"
    os.mkfifo(bad / "fifo.jpg")
    expect["bad/fifo.jpg"] = "unreadable"
    if os.geteuid() != 0:  # root can read a mode-000 file
        put("bad/no_permission.jpg", raw, "unreadable")
        os.chmod(root / "bad/no_permission.jpg", 0)
    (root / "loose.jpg").write_bytes(raw)
    expect["loose.jpg"] = "no-class"
    # 2 GiB files (sparse, so cheap to make): refused without being read into memory.
    with open(bad / "huge_text.jpg", "wb") as f:
        f.write(b"not an image at all\n")
        f.truncate(2 << 30)
    expect["bad/huge_text.jpg"] = "not-an-image"
    with open(bad / "huge_jpeg_magic.jpg", "wb") as f:
        f.write(raw[:100])
        f.truncate(2 << 30)
    expect["bad/huge_jpeg_magic.jpg"] = "too-large"
    # A directory symlink back to its parent must not loop the walk.
    os.symlink(root / "bad", bad / "loop")
    return root, expect


def test_every_input_lands_in_shards_or_rejects(corpus, tmp_path):
    root, expect = corpus
    proc = run_build(root, tmp_path / "ds", "--json", timeout=120)
    ds = Dataset(tmp_path / "ds")
    recorded = {row[4]: row for row in ds.index()}
    rejected = {path: (kind, detail) for path, kind, detail in ds.rejects()}
    assert set(recorded) | set(rejected) == set(expect), (recorded, rejected)
    assert not set(recorded) & set(rejected)
    for rel, reason in expect.items():
        if reason is None:
            assert rel in recorded, (rel, rejected.get(rel))
        else:
            assert rel in rejected, rel
            assert rejected[rel][0] == reason, (rel, rejected[rel])
            assert rejected[rel][1], rel
    assert ds.manifest["rejected"] == len(rejected)
    assert str(len(rejected)) in proc.stdout


def test_awkward_images_match_pil(corpus, tmp_path):
    root, _ = corpus
    run_build(root, tmp_path / "ds")
    ds = Dataset(tmp_path / "ds")
    for i, row in enumerate(ds.index()):
        rel = row[4]
        ours = ds.pixels(i)[0].astype(int)
        if rel.endswith("gray16.png"):
            # Pillow's convert("RGB") of a 16-bit image clips at 255 instead of scaling; we scale
            # 0..65535 to 0..255 like every other 16-to-8-bit conversion.
            g = np.asarray(Image.open(root / rel), dtype=np.float64) / 257.0
            w, h = g.shape[1], g.shape[0]
            ref8 = Image.fromarray(np.round(g).astype(np.uint8)).convert("RGB")
            ref8.save(tmp_path / "g8.png")
            ref = pil_reference(tmp_path / "g8.png").astype(int)
            assert np.abs(ours - ref).max() <= 1, rel
            continue
        ref = pil_reference(root / rel).astype(int)
        d = np.abs(ours - ref)
        assert d.mean() <= PIL_MEAN_DIFF and d.max() <= PIL_MAX_DIFF, (rel, d.mean(), d.max())


def test_list_file_paths_cannot_escape_root(tmp_path, corpus):
    root, _ = corpus
    secret = tmp_path / "secret.jpg"
    secret.write_bytes((root / "good" / "ok.jpg").read_bytes())
    lst = tmp_path / "list.txt"
    lst.write_text(f"good/ok.jpg 0\n../secret.jpg 0\n{secret} 0\n")
    run_build(lst, tmp_path / "ds", "--root", root, "--size", "32")
    ds = Dataset(tmp_path / "ds")
    assert [row[4] for row in ds.index()] == ["good/ok.jpg"]
    assert {(p, kind) for p, kind, _ in ds.rejects()} == {(str(secret), "outside-root"), ("../secret.jpg", "outside-root")}


def test_strict_fails_naming_the_file(corpus, tmp_path):
    root, _ = corpus
    out = tmp_path / "strict"
    proc = run_build(root, out, "--strict", check=False)
    assert proc.returncode != 0
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and str(root) in line and "--strict" in line, proc.stderr
    assert not out.exists()
    assert not list(tmp_path.glob("strict.partial-*"))
