"""RandomResizedCrop (recipe="rrc") against torchvision.transforms.v2's functional ops on real photos.

The oracle for every window is torchvision's `resized_crop` (and `resize` + `center_crop` for
evaluation) on the PIL image of the record as stored — decoded by PIL from the record's bytes, read
with the independent shard reader in alexpipe_format.py. Exact decoding must agree within one level
(the rounding of the resize's last step, as everywhere else: conftest.PIL_MAX_DIFF); crop-aware
decoding within the tolerance docs/ENGINE.md states. The window sampling is compared with
torchvision's own `RandomResizedCrop.get_params` by two-sample Kolmogorov–Smirnov tests.
"""

import io

import numpy as np
import pytest
from PIL import Image

import alexpipe
from alexpipe_format import Dataset as RawDataset
from conftest import PIL_MAX_DIFF, PIL_MEAN_DIFF, require, run_build

# Crop-aware decoding (DCT scale 1/8, 1/4, 1/2 or 1 + cropping region) against torchvision on the
# full decode, measured on this corpus over 5 epochs (2026-12-01; docs/ENGINE.md): training
# windows, mean difference per image 0.13-0.16 on average, worst 0.48, 99th percentile <= 7;
# evaluation 0.17-0.44 on average, worst 2.18, 99th percentile <= 18 (a final resize of only
# ~1.0-1.1x after the DCT scale, so the DCT's sharper downscale shows). Bounds: (worst mean, worst
# p99, average mean), with a margin for other photos. A window shifted by one scaled pixel or a
# wrong scale gives averages of 3 and more.
CROP_AWARE = {"train": (1.0, 10, 0.35), "eval": (3.0, 24, 0.8)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, real_photos):
    """An ImageFolder of whole photos at their own aspect: baseline, progressive, grey and CMYK
    JPEGs, a PNG, and an image smaller than the output size."""
    root = tmp_path_factory.mktemp("rrc") / "images"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
    for i, p in enumerate(real_photos):
        im = Image.open(p).convert("RGB")
        cls = "ab"[i % 2]
        if i == 0:
            im.save(root / cls / f"{i:02d}.png")
        elif i == 1:
            im.convert("L").save(root / cls / f"{i:02d}.jpg", quality=90)
        elif i == 2:
            im.convert("CMYK").save(root / cls / f"{i:02d}.jpg", quality=90)
        elif i == 3:
            im.save(root / cls / f"{i:02d}.jpg", quality=88, progressive=True)
        else:
            im.save(root / cls / f"{i:02d}.jpg", quality=92)
    small = Image.open(real_photos[4]).convert("RGB").resize((120, 90), Image.BILINEAR)
    small.save(root / "b" / "small.jpg", quality=95)
    return root


@pytest.fixture(scope="module")
def datasets(corpus, tmp_path_factory):
    out = {}
    base = tmp_path_factory.mktemp("rrc-ds")
    for name, args in {
        "original": ["--mode", "original"],
        "jpeg512": ["--mode", "jpeg", "--max-side", "512"],
    }.items():
        run_build(corpus, base / name, *args)
        out[name] = base / name
    return out


def stored_image(raw, i):
    """The record as PIL sees it (the oracle's input)."""
    return Image.open(io.BytesIO(raw.records[i][1])).convert("RGB")


def batches(path, epochs=3, **kw):
    """Three epochs (three windows per record) of u8 batches with their parameters."""
    args = dict(batch_size=4, recipe="rrc", layout="u8_nhwc", shuffle=False, drop_last=False, debug=True, threads=2)
    args.update(kw)
    loader = alexpipe.Loader(str(path), **args)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for images, labels, info in loader:
            yield images, labels, info


def state_after_one_batch(path, epoch, **options):
    """The state of a 2-thread loader after the first batch of `epoch`."""
    loader = alexpipe.Loader(str(path), threads=2, **options)
    loader.set_epoch(epoch)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    del it
    return state


def windows(info, k):
    return tuple(int(info[c][k]) for c in ("x", "y", "w", "h"))


def horizontal_first(pil, size):
    """Pillow's BICUBIC resize of the whole image to size (w, h), as two one-axis Pillow resizes,
    the horizontal pass first: what Pillow's resize did up to 12 and what alexpipe does. Pillow 13
    runs the vertical pass first when the height shrinks much more than the width; bicubic
    overshoots and is clamped between the passes, so the order moves pixels at sharp edges by
    several levels (a bilinear triangle never overshoots: there only a rounding moves)."""
    across = pil.resize((size[0], pil.height), Image.BICUBIC)
    return across.resize(size, Image.BICUBIC)


def interpolation_mode(name):
    """torchvision's InterpolationMode of a filter name the debug dict reports."""
    from torchvision.transforms import InterpolationMode

    return {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}[name]


def resized_crop_reference(F, pil, window, size=224, flip=False, filter="bilinear"):
    """torchvision's resized_crop on the PIL image; for bicubic, with Pillow's passes in its
    classic order (see horizontal_first)."""
    x, y, w, h = window
    if filter == "bicubic":
        out = horizontal_first(pil.crop((x, y, x + w, y + h)), (size, size))
    else:
        out = F.resized_crop(pil, top=y, left=x, height=h, width=w, size=[size, size],
                             interpolation=interpolation_mode(filter), antialias=True)
    if flip:
        out = F.horizontal_flip(out)
    return np.asarray(out)


@pytest.mark.parametrize("name", ["original", "jpeg512"])
def test_exact_decoding_is_torchvisions_resized_crop(datasets, name):
    F = require("torchvision.transforms.v2.functional", "the oracle")
    raw = RawDataset(datasets[name])
    seen = 0
    for images, _, info in batches(datasets[name], decode="exact", flip=0.5):
        for k, idx in enumerate(info["indices"]):
            pil = stored_image(raw, idx)
            ref = resized_crop_reference(F, pil, windows(info, k), flip=bool(info["flip"][k]))
            diff = np.abs(ref.astype(int) - images[k].astype(int))
            assert diff.max() <= PIL_MAX_DIFF, (name, idx, windows(info, k), diff.max())
            assert diff.mean() <= PIL_MEAN_DIFF, (name, idx, diff.mean())
            seen += 1
    assert seen == 3 * len(raw)


@pytest.mark.parametrize("name", ["original", "jpeg512"])
def test_crop_aware_decoding_is_within_the_stated_tolerance(datasets, name):
    F = require("torchvision.transforms.v2.functional", "the oracle")
    raw = RawDataset(datasets[name])
    exact = list(batches(datasets[name], decode="exact"))
    crop = list(batches(datasets[name], decode="crop"))
    worst_mean, worst_p99, p99_bound, average_bound = 0.0, 0.0, CROP_AWARE["train"][1], CROP_AWARE["train"][2]
    means = []
    for (ei, _, einfo), (ci, _, cinfo) in zip(exact, crop):
        # The same windows, mirrors and records: the decode mode changes pixels only.
        for key in ("indices", "x", "y", "w", "h", "flip"):
            np.testing.assert_array_equal(einfo[key], cinfo[key])
        for k, idx in enumerate(cinfo["indices"]):
            pil = stored_image(raw, idx)
            ref = resized_crop_reference(F, pil, windows(cinfo, k), flip=bool(cinfo["flip"][k]))
            diff = np.abs(ref.astype(int) - ci[k].astype(int))
            mean, p99 = diff.mean(), np.percentile(diff, 99)
            means.append(mean)
            worst_mean, worst_p99 = max(worst_mean, mean), max(worst_p99, p99)
            assert mean <= CROP_AWARE["train"][0] and p99 <= p99_bound, (name, idx, windows(cinfo, k), mean, p99)
    print(f"crop-aware vs torchvision on {name}: average {np.mean(means):.2f}, worst mean {worst_mean:.2f}, p99 {worst_p99:.1f}")
    assert np.mean(means) <= average_bound


def test_evaluation_is_resize_then_center_crop(datasets):
    F = require("torchvision.transforms.v2.functional", "the oracle")
    path = datasets["original"]
    raw = RawDataset(path)
    for decode in ("exact", "crop"):
        loader = alexpipe.Loader(
            str(path), batch_size=4, recipe="rrc", train=False, layout="u8_nhwc", shuffle=False, drop_last=False, decode=decode
        )
        k, means = 0, []
        worst_mean, worst_p99, average = CROP_AWARE["eval"]
        for images, _ in loader:
            for img in images:
                ref = np.asarray(F.center_crop(F.resize(stored_image(raw, k), 256, antialias=True), 224))
                diff = np.abs(ref.astype(int) - img.astype(int))
                means.append(diff.mean())
                if decode == "exact":
                    assert diff.max() <= PIL_MAX_DIFF and diff.mean() <= PIL_MEAN_DIFF, (k, diff.max(), diff.mean())
                else:
                    assert diff.mean() <= worst_mean and np.percentile(diff, 99) <= worst_p99, (k, diff.mean())
                k += 1
        assert k == len(raw)
        assert decode == "exact" or np.mean(means) <= average, np.mean(means)


def test_bicubic_and_random_interpolation_are_pils(datasets):
    """interpolation="bicubic" and "random" (timm's --train-interpolation random): each window
    resized with the filter the debug dict names, as Pillow's BICUBIC (in its classic pass order:
    horizontal_first) or torchvision's bilinear resized_crop on the PIL image; "random" picks each about
    half the time, draws it after the window (the windows are the bilinear loader's), and
    evaluates with bicubic (timm's eval default). Crop-aware decoding stays within its tolerance."""
    F = require("torchvision.transforms.v2.functional", "the oracle")
    path = datasets["original"]
    raw = RawDataset(path)
    epochs = 8
    # Bicubic's intermediate rounds differently by one level where fast_image_resize's 14-bit
    # weights and Pillow's 22-bit ones straddle a half; the cubic's lobes (their absolute weights
    # sum to up to 1.25) carry that into a 2 at a few pixels.
    max_diff = {"bilinear": PIL_MAX_DIFF, "bicubic": PIL_MAX_DIFF + 1}
    worst = 0.0
    for interpolation in ("bicubic", "random"):
        counts = {"bilinear": 0, "bicubic": 0}
        plain = batches(path, epochs=epochs, decode="exact", flip=0.5)
        for (images, _, info), (_, _, plain_info) in zip(batches(path, epochs=epochs, decode="exact", flip=0.5,
                                                                  interpolation=interpolation), plain):
            for key in ("indices", "x", "y", "w", "h"):
                np.testing.assert_array_equal(info[key], plain_info[key])
            for k, idx in enumerate(info["indices"]):
                chosen = info["filter"][k]
                counts[chosen] += 1
                pil, window, flip = stored_image(raw, idx), windows(info, k), bool(info["flip"][k])
                ref = resized_crop_reference(F, pil, window, flip=flip, filter=chosen)
                diff = np.abs(ref.astype(int) - images[k].astype(int))
                worst = max(worst, (diff > PIL_MAX_DIFF).mean())
                assert diff.max() <= max_diff[chosen], (interpolation, chosen, idx, window, diff.max())
                assert diff.mean() <= PIL_MEAN_DIFF, (interpolation, chosen, idx, diff.mean())
                # The installed torchvision + Pillow as they are, whatever their pass order: the
                # same pixels but for a few edge pixels.
                x, y, w, h = window
                direct = F.resized_crop(pil, top=y, left=x, height=h, width=w, size=[224, 224],
                                        interpolation=interpolation_mode(chosen), antialias=True)
                direct = np.asarray(F.horizontal_flip(direct) if flip else direct).astype(int)
                assert np.abs(direct - images[k].astype(int)).mean() <= PIL_MEAN_DIFF, (chosen, idx, window)
        total = epochs * len(raw)
        assert sum(counts.values()) == total
        if interpolation == "bicubic":
            assert counts["bicubic"] == total, counts
        else:
            # Binomial(72, 1/2): 36 ± 4.2; the draws are fixed by the seed, so this cannot flake.
            assert 20 <= counts["bicubic"] <= 52, counts
    print(f"largest share of values off by 2: {worst:.2e}")
    assert worst < 1e-3

    # The filter really differs: bicubic's windows are not bilinear's (sharper, beyond rounding).
    bicubic = next(batches(path, epochs=1, decode="exact", interpolation="bicubic"))[0]
    bilinear = next(batches(path, epochs=1, decode="exact"))[0]
    assert np.abs(bicubic.astype(int) - bilinear.astype(int)).max() > 8

    # Evaluation after "random" is bicubic: Resize(256, BICUBIC) + CenterCrop(224).
    loader = alexpipe.Loader(str(path), batch_size=4, recipe="rrc", train=False, layout="u8_nhwc", shuffle=False,
                             drop_last=False, decode="exact", interpolation="random")
    k = 0
    for images, _ in loader:
        for img in images:
            pil = stored_image(raw, k)
            short = min(pil.size)
            size = (256 * pil.width // short, 256 * pil.height // short)  # torchvision's Resize(256)
            ref = np.asarray(F.center_crop(horizontal_first(pil, size), 224))
            diff = np.abs(ref.astype(int) - img.astype(int))
            assert diff.max() <= PIL_MAX_DIFF and diff.mean() <= PIL_MEAN_DIFF, (k, diff.max(), diff.mean())
            k += 1
    assert k == len(raw)

    # Crop-aware decoding with bicubic: the same bounds as bilinear's (its margin covers the
    # wider kernel).
    worst_mean, worst_p99, average = CROP_AWARE["train"]
    means = []
    for images, _, info in batches(path, decode="crop", interpolation="bicubic"):
        for k, idx in enumerate(info["indices"]):
            ref = resized_crop_reference(F, stored_image(raw, idx), windows(info, k), flip=bool(info["flip"][k]),
                                         filter="bicubic")
            diff = np.abs(ref.astype(int) - images[k].astype(int))
            means.append(diff.mean())
            assert diff.mean() <= worst_mean and np.percentile(diff, 99) <= worst_p99, (idx, diff.mean())
    print(f"crop-aware bicubic vs torchvision: average {np.mean(means):.2f}, worst mean {max(means):.2f}")
    assert np.mean(means) <= average


def test_random_interpolation_is_deterministic_resumable_and_part_of_the_state(datasets):
    """The per-sample filter comes from the sample's own draws: identical batches for 1 and 3
    threads and after a resume; a state of a random-filter loader is refused by a bilinear one."""
    path = datasets["jpeg512"]
    common = dict(batch_size=2, recipe="rrc", seed=9, drop_last=True, interpolation="random", debug=True)

    def run(threads, state=None):
        loader = alexpipe.Loader(str(path), threads=threads, **common)
        if state is None:
            loader.set_epoch(2)
        else:
            loader.load_state_dict(state)
        return [(b.copy(), list(info["filter"])) for b, _, info in loader]

    one, three = run(1), run(3)
    assert len(one) == len(three) > 1
    for (a, fa), (b, fb) in zip(one, three):
        np.testing.assert_array_equal(a, b)
        assert fa == fb
    assert {f for _, fs in one for f in fs} == {"bilinear", "bicubic"}
    state = state_after_one_batch(path, 2, **common)
    rest = run(1, state)
    assert len(rest) == len(one) - 1
    for (a, fa), (b, fb) in zip(one[1:], rest):
        np.testing.assert_array_equal(a, b)
        assert fa == fb
    bilinear = alexpipe.Loader(str(path), batch_size=2, recipe="rrc", seed=9, drop_last=True)
    with pytest.raises(ValueError, match="recipe"):
        bilinear.load_state_dict(state)
    with pytest.raises(ValueError, match="bicubic"):
        alexpipe.Loader(str(path), recipe="rrc", interpolation="lanczos")


def test_the_timm_preset_picks_its_filter_at_random(datasets):
    """recipe="timm" resizes with bilinear or bicubic at random (timm's train.py default); an
    explicit interpolation overrides the preset."""
    path = datasets["original"]
    common = dict(batch_size=3, recipe="timm", shuffle=False, drop_last=True, debug=True, seed=4)
    seen = set()
    loader = alexpipe.Loader(str(path), **common)
    for epoch in range(4):
        loader.set_epoch(epoch)
        for _, _, info in loader:
            seen |= set(info["filter"])
    assert seen == {"bilinear", "bicubic"}
    fixed = alexpipe.Loader(str(path), interpolation="bilinear", **common)
    assert {f for _, _, info in fixed for f in info["filter"]} == {"bilinear"}


def test_f32_output_is_torchvisions_normalize(datasets):
    """f32 NCHW with mean="imagenet": the u8 window through torchvision's to_dtype + normalize."""
    torch = require("torch", "the oracle")
    F = require("torchvision.transforms.v2.functional", "the oracle")
    path = datasets["original"]
    common = dict(batch_size=4, recipe="rrc", shuffle=False, drop_last=False, decode="exact", seed=3)
    u8 = alexpipe.Loader(str(path), layout="u8_nhwc", **common)
    f32 = alexpipe.Loader(str(path), layout="f32_nchw", **common)
    for (bu, _), (bf, _) in zip(u8, f32):
        t = torch.from_numpy(np.ascontiguousarray(bu)).permute(0, 3, 1, 2)
        ref = F.normalize(F.to_dtype(t, torch.float32, scale=True), mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
        np.testing.assert_allclose(bf, ref.numpy(), rtol=0, atol=1e-4)


def test_window_sampling_matches_torchvisions(tmp_path):
    """Two-sample KS tests of alexpipe's draws against torchvision's get_params, on the quantities
    the sampling defines: area fraction, log aspect ratio, and the window's centre."""
    torch = require("torch", "torchvision's sampler")
    T = require("torchvision.transforms.v2", "torchvision's sampler")
    stats = require("scipy.stats", "KS test")
    n = 6000
    for width, height in [(500, 375), (1200, 300)]:
        ours = alexpipe.random_resized_crop_windows(width, height, n, seed=11)
        torch.manual_seed(0)
        img = torch.empty(3, height, width)
        theirs = np.array([T.RandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(n)])
        # get_params gives (top, left, h, w); ours (left, top, w, h).
        theirs = theirs[:, [1, 0, 3, 2]]

        def features(win):
            x, y, w, h = (win[:, i].astype(float) for i in range(4))
            return {
                "area": w * h / (width * height),
                "log_ratio": np.log(w / h),
                "cx": (x + w / 2) / width,
                "cy": (y + h / 2) / height,
            }

        fo, ft = features(ours), features(theirs)
        for key in fo:
            p = stats.ks_2samp(fo[key], ft[key]).pvalue
            assert p > 1e-3, (width, height, key, p)
        # The centre fallback is taken as often (a wide image makes it common).
        fallback = lambda win: np.mean(np.all(win == win[np.argmax(win[:, 2] * win[:, 3])], axis=1))  # noqa: E731
        assert abs(fallback(ours) - fallback(theirs)) < 0.02, (fallback(ours), fallback(theirs))
        assert np.all(ours[:, 0] + ours[:, 2] <= width) and np.all(ours[:, 1] + ours[:, 3] <= height)


def test_batches_are_identical_for_any_thread_count_and_after_resume(datasets):
    path = datasets["jpeg512"]
    common = dict(batch_size=2, recipe="rrc", seed=5, drop_last=True)

    def run(threads):
        loader = alexpipe.Loader(str(path), threads=threads, **common)
        loader.set_epoch(1)
        return [b.copy() for b, _ in loader]

    one, three = run(1), run(3)
    assert len(one) == len(three) > 1
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)
    state = state_after_one_batch(path, 1, **common)
    resumed = alexpipe.Loader(str(path), threads=1, **common)
    resumed.load_state_dict(state)
    rest = [b.copy() for b, _ in resumed]
    assert len(rest) == len(one) - 1
    for a, b in zip(one[1:], rest):
        np.testing.assert_array_equal(a, b)
    # The recipe is part of the state: a paper-recipe loader refuses it.
    paper = alexpipe.Loader(str(path), batch_size=2, seed=5, drop_last=True)
    with pytest.raises(ValueError, match="recipe"):
        paper.load_state_dict(state)


def test_max_side_keeps_whole_images_and_the_paper_view(corpus, datasets):
    raw = RawDataset(datasets["jpeg512"])
    assert raw.manifest["build"]["max_side"] == 512
    sources = sorted(p for p in corpus.rglob("*") if p.is_file())
    by_name = {p.name: p for p in sources}
    index = raw.index()
    for i, row in enumerate(index):
        src = Image.open(by_name[row[4].split("/")[-1]]).convert("RGB")
        stored = stored_image(raw, i)
        w, h = src.size
        long = max(w, h)
        if long <= 512:
            assert stored.size == (w, h)
        else:
            assert max(stored.size) == 512
            assert abs(stored.size[0] / stored.size[1] - w / h) < 0.01
        # Pixels: Pillow's BILINEAR resize to the same size, then the JPEG's loss.
        ref = np.asarray(src.resize(stored.size, Image.BILINEAR)).astype(int)
        assert np.abs(ref - np.asarray(stored).astype(int)).mean() < 4, row
    # The paper's recipe still reads 256×256 views of these whole images.
    loader = alexpipe.Loader(str(datasets["jpeg512"]), batch_size=2, drop_last=False, shuffle=False)
    images, _ = next(iter(loader))
    assert images.shape == (2, 3, 224, 224)


def test_usage_errors_name_the_fix(corpus, datasets, tmp_path):
    proc = run_build(corpus, tmp_path / "bad", "--max-side", "512", check=False)
    assert proc.returncode != 0 and "--mode jpeg" in proc.stderr
    with pytest.raises(ValueError, match="imagenet"):
        alexpipe.Loader(str(datasets["original"]), recipe="rrc", mean="image")
    with pytest.raises(ValueError, match="ten_crop"):
        alexpipe.Loader(str(datasets["original"]), recipe="rrc", train=False, ten_crop=True)
    with pytest.raises(ValueError, match="scale"):
        alexpipe.Loader(str(datasets["original"]), recipe="rrc", scale=(0.9, 0.1))
    with pytest.raises(ValueError, match="decode"):
        alexpipe.Loader(str(datasets["original"]), recipe="rrc", decode="fast")
    with pytest.raises(ValueError, match="recipe"):
        alexpipe.Loader(str(datasets["original"]), recipe="deit")


def test_the_trainer_trains_with_the_rrc_recipe(datasets, tmp_path):
    """`train --recipe rrc` runs the RandomResizedCrop loader end to end: training steps on random
    windows of whole images, validation on the resized centre crop, a checkpoint."""
    import json
    import subprocess

    from conftest import ROOT

    train = ROOT / "target" / "release" / "train"
    run = tmp_path / "run"
    ds = str(datasets["jpeg512"])
    args = [str(train), "--train", ds, "--val", ds, "--out", str(run), "--preset", "demo", "--recipe", "rrc",
            "--normalize", "imagenet", "--lighting", "0", "--crop", "64", "--epochs", "1", "--batch-size", "4",
            "--device", "cpu", "--quiet"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert rows and rows[-1]["epoch"] == 1, rows
    assert (run / "checkpoint.ot").exists()
    # The paper's mean image has no place in random windows: a clear refusal, naming the fix.
    bad_args = [str(train), "--train", ds, "--val", ds, "--out", str(tmp_path / "bad"), "--preset", "demo",
                "--recipe", "rrc", "--normalize", "image", "--device", "cpu", "--quiet"]
    bad = subprocess.run(bad_args, capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "imagenet" in bad.stderr, bad.stderr
