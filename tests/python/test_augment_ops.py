"""The RandomResizedCrop recipe's optional ops against torchvision.transforms.v2 and timm on real photos.

Each op draws after the window and the mirror, so a loader with the op and one without give the
same windows, mirrors and records; the oracle takes the engine's output without the op (itself
checked against torchvision in test_random_resized_crop.py), applies torchvision's (or timm's) own
function with the parameters the engine reports drawing, and must agree with the engine's output
with the op: colour jitter and TrivialAugmentWide within 1 level mean (the issue's bound; measured
and printed), random erasing and MixUp/CutMix exactly. The draws themselves are checked against
the definitions (ranges, the op set, the magnitudes) and, for MixUp/CutMix, thread counts and
resuming.
"""

import math

import numpy as np
import pytest
from PIL import Image

import alexpipe
from conftest import require, run_build

SIZE = 128


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, real_photos):
    root = tmp_path_factory.mktemp("augment") / "images"
    for i, p in enumerate(real_photos):
        cls = root / "abc"[i % 3]
        cls.mkdir(parents=True, exist_ok=True)
        Image.open(p).convert("RGB").save(cls / f"{i:02d}.jpg", quality=92)
    out = tmp_path_factory.mktemp("augment-ds") / "ds"
    run_build(root, out, "--mode", "jpeg", "--max-side", "400")
    return out


def epochs(path, count, **kw):
    """`count` epochs of batches (images, labels, info) of the rrc recipe."""
    args = dict(batch_size=4, recipe="rrc", layout="u8_nhwc", crop=SIZE, shuffle=False, drop_last=False,
                debug=True, threads=2, decode="exact")
    args.update(kw)
    loader = alexpipe.Loader(str(path), **args)
    out = []
    for epoch in range(count):
        loader.set_epoch(epoch)
        out += [(np.array(images), np.array(labels), info) for images, labels, info in loader]
    return out


def chw(img):
    import torch

    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous()


def hwc(t):
    return t.permute(1, 2, 0).numpy()


def same_draws(plain, augmented):
    for (_, _, a), (_, _, b) in zip(plain, augmented, strict=True):
        for key in ("indices", "x", "y", "w", "h", "flip"):
            np.testing.assert_array_equal(a[key], b[key])


def test_color_jitter_is_torchvisions_in_the_drawn_order(dataset):
    F = require("torchvision.transforms.v2.functional", "the oracle")
    plain = epochs(dataset, 4)
    jittered = epochs(dataset, 4, color_jitter=(0.4, 0.4, 0.4, 0.1))
    same_draws(plain, jittered)
    fns = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
    means, orders = [], set()
    for (base, _, _), (out, _, info) in zip(plain, jittered):
        for k in range(len(base)):
            factors, order = info["jitter"][k], info["jitter_order"][k]
            assert sorted(order) == [0, 1, 2, 3]
            orders.add(tuple(order))
            for f, lo, hi in zip(factors, (0.6, 0.6, 0.6, -0.1), (1.4, 1.4, 1.4, 0.1)):
                assert lo <= f <= hi
            t = chw(base[k])
            for fn_id in order:
                t = fns[fn_id](t, float(factors[fn_id]))
            diff = np.abs(hwc(t).astype(int) - out[k].astype(int))
            means.append(diff.mean())
            assert diff.mean() <= 1.0, (info["indices"][k], factors, order, diff.mean(), diff.max())
    print(f"colour jitter vs torchvision: mean diff {np.mean(means):.4f}, worst {max(means):.4f}")
    assert len(orders) > 10, "the order is drawn per sample"


def test_trivial_augment_wide_is_torchvisions_op_at_the_drawn_magnitude(dataset):
    require("torchvision", "the oracle")
    import torch
    from torchvision.transforms import v2

    ta = v2.TrivialAugmentWide()
    space = {name: (fn(31, SIZE, SIZE), signed) for name, (fn, signed) in ta._AUGMENTATION_SPACE.items()}
    plain = epochs(dataset, 16)
    augmented = epochs(dataset, 16, trivial_augment=True)
    same_draws(plain, augmented)
    seen, worst = {}, {}
    for (base, _, _), (out, _, info) in zip(plain, augmented):
        for k in range(len(base)):
            name, magnitude = info["trivial_op"][k], float(info["trivial_magnitude"][k])
            magnitudes, signed = space[name]
            if magnitudes is None:
                assert magnitude == 0.0
            else:
                # One of torchvision's 31 magnitudes (within an f32 ulp: torch's f32 linspace kernel
                # rounds some steps differently), negated only for the signed ops.
                assert signed or magnitude >= 0
                theirs = magnitudes.to(torch.float64).numpy()
                assert np.any(np.isclose(theirs, abs(magnitude), rtol=2e-7, atol=0)), (name, magnitude)
            seen[name] = seen.get(name, 0) + 1
            ref = ta._apply_image_or_video_transform(
                chw(base[k]), name, magnitude, interpolation=ta.interpolation, fill=ta._fill
            )
            diff = np.abs(hwc(ref).astype(int) - out[k].astype(int))
            worst[name] = max(worst.get(name, 0.0), diff.mean())
            assert diff.mean() <= 1.0, (name, magnitude, info["indices"][k], diff.mean(), diff.max())
    print("TrivialAugmentWide vs torchvision, worst mean diff per op:", {n: round(v, 4) for n, v in worst.items()})
    assert set(seen) == set(space), f"every op of the set is drawn: {seen}"


def test_random_erasing_is_torchvisions_erase_of_the_normalised_tensor(dataset):
    F = require("torchvision.transforms.v2.functional", "the oracle")
    import torch
    from torchvision.transforms import v2

    kw = dict(layout="f32_nchw")
    plain = epochs(dataset, 6, **kw)
    const = epochs(dataset, 6, random_erasing=0.5, **kw)
    pixel = epochs(dataset, 6, random_erasing=1.0, erasing_mode="pixel", **kw)
    same_draws(plain, const)
    erased, areas = 0, []
    for (base, _, _), (out, _, info) in zip(plain, const):
        for k in range(len(base)):
            x, y, w, h = info["erase"][k]
            if w < 0:
                np.testing.assert_array_equal(out[k], base[k])
                continue
            erased += 1
            areas.append(w * h / SIZE**2)
            ref = F.erase(torch.from_numpy(base[k].copy()), i=int(y), j=int(x), h=int(h), w=int(w), v=torch.zeros(3, 1, 1))
            np.testing.assert_array_equal(out[k], ref.numpy())
    n = sum(len(b) for b, _, _ in plain)
    assert 0.3 * n <= erased <= 0.7 * n, (erased, n)
    # The regions' areas follow torchvision's own get_params for this image size.
    stats = require("scipy.stats", "the KS test")
    tv = v2.RandomErasing(p=1.0)
    torch.manual_seed(0)
    img = torch.zeros(3, SIZE, SIZE)
    theirs = [h * w / SIZE**2 for _, _, h, w, _ in (tv.make_params([img]).values() for _ in range(2000))]
    assert stats.ks_2samp(areas, theirs).pvalue > 1e-3
    # timm's mode="pixel": N(0, 1) values inside the region, nothing changed outside.
    inside = []
    for (base, _, _), (out, _, info) in zip(plain, pixel):
        for k in range(len(base)):
            x, y, w, h = info["erase"][k]
            if w < 0:
                continue
            mask = np.zeros(base[k].shape, bool)
            mask[:, y : y + h, x : x + w] = True
            np.testing.assert_array_equal(out[k][~mask], base[k][~mask])
            inside.append(out[k][mask])
    values = np.concatenate(inside)
    assert abs(values.mean()) < 0.05 and abs(values.std() - 1) < 0.05, (values.mean(), values.std())


def timm_mixup(images, labels, info, classes, **kw):
    """timm's Mixup on `images` with the engine's λ (and CutMix box): its own mixing and targets."""
    import torch
    from timm.data import mixup as timm_mix

    lam, box = info["mix_lam"], info["mix_box"]
    mix = timm_mix.Mixup(num_classes=classes, **kw)
    mix._params_per_batch = lambda: (0.5 if box is not None else lam, box is not None)
    original = timm_mix.rand_bbox
    timm_mix.rand_bbox = lambda *a, **k: tuple(np.int64(v) for v in box)
    try:
        x, target = mix(torch.from_numpy(images.copy()), torch.from_numpy(labels))
    finally:
        timm_mix.rand_bbox = original
    return x.numpy(), target.numpy()


def test_mixup_cutmix_is_timms_and_stable_across_threads_and_resume(dataset):
    require("timm", "the oracle (timm's Mixup)")
    classes = 3
    kw = dict(layout="f32_nchw", batch_size=4, drop_last=True, shuffle=True)
    mixing = dict(mixup=0.8, cutmix=1.0, label_smoothing=0.1)
    plain = epochs(dataset, 12, **kw)
    mixed = epochs(dataset, 12, **kw, **mixing)
    same_draws(plain, mixed)
    kinds = set()
    for (base, labels, _), (out, soft, info) in zip(plain, mixed):
        np.testing.assert_array_equal(info["labels"], labels)
        assert soft.shape == (len(labels), classes)
        np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-6)
        box = info["mix_box"]
        kinds.add("cutmix" if box is not None else "mixup")
        if box is not None:
            # The mixed area matches λ: the pixels taken from the partner are the box, λ its rest.
            y0, y1, x0, x1 = box
            assert math.isclose(info["mix_lam"], 1 - (y1 - y0) * (x1 - x0) / SIZE**2, abs_tol=1e-12)
        x, target = timm_mixup(base, labels, info, classes, mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1)
        np.testing.assert_array_equal(out, x)
        np.testing.assert_allclose(soft, target, rtol=0, atol=1e-7)
    assert kinds == {"mixup", "cutmix"}
    # λ is drawn per batch from (seed, epoch, batch): any thread count gives the same batches.
    one = epochs(dataset, 2, threads=1, **kw, **mixing)
    three = epochs(dataset, 2, threads=3, **kw, **mixing)
    for (a, sa, _), (b, sb, _) in zip(one, three, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(sa, sb)
    # Resuming mid-epoch mixes the rest as the first run did.
    args = dict(recipe="rrc", crop=SIZE, threads=2, **kw, **mixing)
    loader = alexpipe.Loader(str(dataset), **args)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    rest = [(np.array(x), np.array(s)) for x, s in it]
    again = alexpipe.Loader(str(dataset), **args)
    again.load_state_dict(state)
    resumed = [(np.array(x), np.array(s)) for x, s in again]
    assert len(rest) == len(resumed) >= 1
    for (a, sa), (b, sb) in zip(rest, resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(sa, sb)


def test_bad_settings_are_clear_errors(dataset):
    with pytest.raises(ValueError, match="rrc"):
        alexpipe.Loader(str(dataset), color_jitter=0.4)
    with pytest.raises(ValueError, match="f32_nchw"):
        alexpipe.Loader(str(dataset), recipe="rrc", layout="u8_nhwc", mixup=0.8)
    with pytest.raises(ValueError, match="hue"):
        alexpipe.Loader(str(dataset), recipe="rrc", color_jitter=(0.4, 0.4, 0.4, 0.7))
    with pytest.raises(ValueError, match="erasing_mode"):
        alexpipe.Loader(str(dataset), recipe="rrc", random_erasing=0.25, erasing_mode="noise")


def test_timm_preset_is_timms_training_defaults(dataset):
    """recipe="timm": RRC + flip + ColorJitter(0.4) + ImageNet normalisation, label smoothing 0.1 as
    soft labels (timm's train.py defaults: no MixUp/CutMix, no erasing)."""
    loader = alexpipe.Loader(str(dataset), recipe="timm", crop=SIZE, batch_size=4, shuffle=False, debug=True)
    images, soft, info = next(iter(loader))
    assert images.shape == (4, 3, SIZE, SIZE) and images.dtype == np.float32
    classes = soft.shape[1]
    expected = np.full((4, classes), 0.1 / classes, np.float32)
    expected[np.arange(4), info["labels"]] = 1 - 0.1 + 0.1 / classes
    np.testing.assert_allclose(soft, expected, rtol=0, atol=1e-7)
    assert np.all(info["erase"] == -1) and set(info["trivial_op"]) == {""}
    factors = info["jitter"]
    assert np.all((factors[:, :3] >= 0.6) & (factors[:, :3] <= 1.4)) and np.all(np.isnan(factors[:, 3]))
