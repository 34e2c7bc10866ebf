"""Records equal PIL's Resize(256) + CenterCrop(256) of the same real photos (paper §2)."""

import shutil

import numpy as np
import pytest
from alexpipe_format import Dataset
from conftest import PIL_MAX_DIFF, PIL_MEAN_DIFF, pil_reference, run_build
from PIL import Image

import alexpipe

MEAN_TOL = PIL_MEAN_DIFF  # see conftest: measured max 1, mean <= 0.19
MAX_TOL = PIL_MAX_DIFF


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, real_photos):
    """The real photos plus variants: rescaled (ImageNet-like sizes), cropped, JPEG at several
    qualities, progressive, grayscale, 4:4:4, PNG, and a small one that must be upscaled."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(7)
    a, b = root / "a", root / "b"
    a.mkdir()
    b.mkdir()
    for k, src in enumerate(real_photos):
        shutil.copy(src, a / src.name)
        im = Image.open(src).convert("RGB")
        w, h = im.size
        # A random crop rescaled to an ImageNet-like size.
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        short = int(rng.integers(300, 520))
        s = short / min(cw, ch)
        var = im.crop((x, y, x + cw, y + ch)).resize((max(1, round(cw * s)), max(1, round(ch * s))), Image.LANCZOS)
        q = int(rng.integers(75, 96))
        var.save(b / f"{src.stem}_var_q{q}.jpg", quality=q)
        if k % 2 == 0:
            var.save(b / f"{src.stem}_prog.jpg", quality=90, progressive=True)
            var.convert("L").save(b / f"{src.stem}_gray.jpg", quality=88)
            # 4:2:2 (chroma halved across only) and a portrait 4:2:0 one, whose centre crop cuts
            # rows rather than columns.
            var.save(b / f"{src.stem}_422.jpg", quality=90, subsampling=1)
            var.transpose(Image.Transpose.ROTATE_90).save(b / f"{src.stem}_portrait.jpg", quality=90)
        else:
            var.save(b / f"{src.stem}_444.jpg", quality=92, subsampling=0)
            var.save(b / f"{src.stem}_var.png")
    Image.open(real_photos[0]).convert("RGB").resize((160, 120), Image.LANCZOS).save(b / "small_upscaled.jpg", quality=90)
    big = Image.open(real_photos[-1]).convert("RGB").resize((1400, 1100), Image.LANCZOS)
    big.save(b / "big_for_draft.jpg", quality=92)
    return root


def files_in_order(ds):
    return [row[4] for row in ds.index()]


def compare(ds, root, draft=False):
    diffs = []
    for i, rel in enumerate(files_in_order(ds)):
        ours, _ = ds.pixels(i)
        ref = pil_reference(root / rel, draft=draft)
        d = np.abs(ours.astype(int) - ref.astype(int))
        diffs.append((rel, d.mean(), d.max()))
    return diffs


def test_raw_records_match_pil(photo_folder, tmp_path):
    run_build(photo_folder, tmp_path / "ds")
    ds = Dataset(tmp_path / "ds")
    assert len(ds) >= 25
    diffs = compare(ds, photo_folder)
    report = "\n".join(f"{r}: mean {m:.3f} max {x}" for r, m, x in diffs)
    print(report)
    assert all(m <= MEAN_TOL and x <= MAX_TOL for _, m, x in diffs), report
    # JPEGs decode bit-identically to Pillow, so most pixels are equal (measured average of the
    # per-image means: about 0.13).
    assert np.mean([m for _, m, _ in diffs]) < 0.2, report


def test_draft_mode_matches_pil_draft(photo_folder, tmp_path):
    run_build(photo_folder, tmp_path / "ds", "--draft")
    ds = Dataset(tmp_path / "ds")
    diffs = compare(ds, photo_folder, draft=True)
    report = "\n".join(f"{r}: mean {m:.3f} max {x}" for r, m, x in diffs)
    assert all(m <= MEAN_TOL and x <= MAX_TOL for _, m, x in diffs), report
    # The big JPEG really was decoded at reduced scale: it differs from the full decode.
    full = pil_reference(photo_folder / "b" / "big_for_draft.jpg")
    i = files_in_order(ds).index("b/big_for_draft.jpg")
    assert np.abs(ds.pixels(i)[0].astype(int) - full.astype(int)).max() > 0


def test_jpeg_and_original_modes(photo_folder, tmp_path):
    run_build(photo_folder, tmp_path / "raw")
    run_build(photo_folder, tmp_path / "jpeg", "--mode", "jpeg", "--quality", "95")
    run_build(photo_folder, tmp_path / "orig", "--mode", "original")
    raw, jpg, orig = Dataset(tmp_path / "raw"), Dataset(tmp_path / "jpeg"), Dataset(tmp_path / "orig")
    engine_jpg = alexpipe.Dataset(tmp_path / "jpeg")
    engine_orig = alexpipe.Dataset(tmp_path / "orig")
    assert len(raw) == len(jpg) == len(orig) == len(engine_jpg)
    for i, rel in enumerate(files_in_order(raw)):
        pixels, label = raw.pixels(i)
        # The build decodes only the part of a JPEG its centre crop reads; reading the original
        # bytes back decodes them whole: the same pixels, to the bit, in every chroma layout.
        np.testing.assert_array_equal(engine_orig[i][0], pixels, err_msg=rel)
        jlabel, jbytes = jpg.records[i]
        olabel, obytes = orig.records[i]
        assert label == jlabel == olabel
        # original mode keeps the source bytes untouched
        assert obytes == (photo_folder / rel).read_bytes()
        # jpeg mode holds the resized crop re-encoded: decodes to 256x256 close to the raw record
        import io

        dec = np.asarray(Image.open(io.BytesIO(jbytes)).convert("RGB"))
        assert dec.shape == (256, 256, 3)
        # our jpeg-mode decode (libjpeg-turbo, what the loader reads) is bit-identical to Pillow's
        np.testing.assert_array_equal(engine_jpg[i][0], dec, err_msg=rel)
        assert np.abs(dec.astype(int) - pixels.astype(int)).mean() < 3.0, rel
        # ... and is byte-identical to Pillow's encoder (same libjpeg-turbo, quality, 4:2:0) on the raw record
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=95)
        assert jbytes == buf.getvalue(), rel
    # statistics are computed from the resized pixels in every mode
    for other in (jpg, orig):
        np.testing.assert_array_equal(other.mean_image, raw.mean_image)
        assert other.manifest["stats"]["eigvals"] == raw.manifest["stats"]["eigvals"]


def test_size_option(photo_folder, tmp_path):
    run_build(photo_folder, tmp_path / "ds", "--size", "64", "--shard-size", "7")
    ds = Dataset(tmp_path / "ds")
    assert len(ds.manifest["shards"]) == -(-len(ds) // 7)
    for i, rel in enumerate(files_in_order(ds)):
        ref = pil_reference(photo_folder / rel, size=64)
        d = np.abs(ds.pixels(i)[0].astype(int) - ref.astype(int))
        assert d.mean() <= MEAN_TOL and d.max() <= MAX_TOL, rel


def test_jpeg_mode_decodes_bit_identically_to_pil_on_the_fixtures(tmp_path):
    """tests/dataset.rs can only bound jpeg-mode pixels against the raw ones (JPEG is lossy); the
    decoding itself is exact: every fixture record, as alexpipe reads it, equals Pillow's decode of
    the stored JPEG bytes, at the sizes the Rust tests use."""
    import io

    from conftest import ROOT

    for size in (64, 256):
        out = tmp_path / f"jpeg{size}"
        run_build(ROOT / "fixtures" / "images", out, "--mode", "jpeg", "--size", size)
        ours, stored = alexpipe.Dataset(out), Dataset(out)
        assert len(ours) == len(stored) == 31
        for i in range(len(ours)):
            _, jbytes = stored.records[i]
            pil = np.asarray(Image.open(io.BytesIO(jbytes)).convert("RGB"))
            assert pil.shape == (size, size, 3)
            np.testing.assert_array_equal(ours[i][0], pil, err_msg=f"record {i} at {size} px")
