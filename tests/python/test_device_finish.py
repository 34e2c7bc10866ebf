"""TorchLoader(upload="u8"): the engine's u8 patches finished by torch ops (PCA lighting, mean
subtraction, NHWC → NCHW; what runs on the GPU) equal the engine's own f32 batches on the CPU,
for every normalisation and recipe."""

import numpy as np
import pytest

from conftest import FIXTURES, require, run_build


@pytest.fixture(scope="module")
def shards(tmp_path_factory, real_photos):
    base = tmp_path_factory.mktemp("finish")
    run_build(FIXTURES, base / "fixtures", "--size", "72")
    return base / "fixtures"


def both(path, **kw):
    at = require("alexpipe.torch", "the torch helper needs torch")
    f32 = list(at.TorchLoader(str(path), **kw))
    u8 = list(at.TorchLoader(str(path), upload="u8", device="cpu", **kw))
    assert len(f32) == len(u8) > 0
    return f32, u8


CASES = {
    "paper, mean image, lighting": dict(crop=64, lighting=0.1, mean="image"),
    "paper, channel": dict(crop=64, lighting=0.1, mean="channel"),
    "paper, imagenet": dict(crop=64, lighting=0.1, mean="imagenet"),
    "10 patches": dict(crop=64, train=False, ten_crop=True, mean="image"),
    "rrc, imagenet": dict(recipe="rrc", crop=48, mean="imagenet"),
}


@pytest.mark.parametrize("case", CASES)
def test_u8_finished_by_torch_equals_the_engines_f32(shards, case):
    kw = dict(batch_size=4, drop_last=False, seed=9, threads=2, **CASES[case])
    f32, u8 = both(shards, **kw)
    for (a, ya), (b, yb) in zip(f32, u8):
        assert a.shape == b.shape and b.dtype == a.dtype
        assert (ya == yb).all()
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=1e-4)
    # The images differ from batch to batch (the comparison is not of constants).
    first, second = f32[0][0].numpy(), f32[1][0].numpy()
    m = min(len(first), len(second))
    assert not np.allclose(first[:m], second[:m])


def test_u8_with_a_mean_image_and_rrc_is_refused(shards):
    at = require("alexpipe.torch", "the torch helper needs torch")
    with pytest.raises(ValueError, match="mean="):
        at.TorchLoader(str(shards), upload="u8", recipe="rrc", mean="image", crop=48)
    with pytest.raises(ValueError, match="upload"):
        at.TorchLoader(str(shards), upload="fp8")
