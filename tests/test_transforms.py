"""keyfan.transforms: batched forms equal the per-example form row by row, bit for bit."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keyfan as kf
from keyfan import transforms as T
from tests.conftest import LEGACY_SLOW, assert_bitwise_equal

SEED = 715
B = 6


def example_key(key, index, batch_shape):
    """The key of one example, computed alone where the stream allows it."""
    if kf.stream_of(key) == "threefry":
        return kf.at(key, index)
    return kf.fan_out(key, batch_shape)[index]


def images(shape=(B, 9, 7, 3), seed=0):
    """Uniform [0, 1) float32 test data (from NumPy: no compilation per shape)."""
    return jnp.asarray(np.random.default_rng(seed).random(shape, dtype=np.float32))


CASES = {
    "dropout": (functools.partial(T.dropout, rate=0.3), lambda: images((B, 5, 4))),
    "gaussian_noise": (functools.partial(T.gaussian_noise, scale=0.5), lambda: images((B, 7))),
    "flip_left_right": (T.flip_left_right, images),
    "flip_up_down": (functools.partial(T.flip_up_down, p=0.3), images),
    "brightness": (functools.partial(T.brightness, max_delta=0.2), images),
    "contrast": (functools.partial(T.contrast, lower=0.5, upper=1.5), images),
    "random_crop": (functools.partial(T.random_crop, size=(6, 5), padding=2), images),
    "cutout": (functools.partial(T.cutout, size=4, fill=0.5), images),
    "compose": (T.compose(flip=T.flip_left_right, crop=functools.partial(T.random_crop, size=5, padding=1),
                          noise=functools.partial(T.gaussian_noise, scale=0.1)), images),
}


@pytest.mark.bitwise
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("stream", LEGACY_SLOW, indirect=True)  # transforms read keys through the samplers
def test_batched_row_i_equals_single_call(name, stream):
    transform, make = CASES[name]
    key, x = kf.key(SEED, stream=stream), make()
    batched = transform(key, x, batch_axes=1)
    for i in range(B):
        assert_bitwise_equal(batched[i], transform(example_key(key, i, (B,)), x[i]))


@pytest.mark.bitwise
@pytest.mark.parametrize("name", CASES)
def test_raw_keys_on_a_stream_equal_typed_keys(name, stream):
    transform, make = CASES[name]
    raw = jax.random.key_data(kf.key(SEED, stream=stream))
    assert_bitwise_equal(transform(raw, make(), batch_axes=1, stream=stream),
                         transform(kf.key(SEED, stream=stream), make(), batch_axes=1))


@pytest.mark.bitwise
@pytest.mark.parametrize("name", ["dropout", "random_crop", "contrast", "compose"])
def test_two_batch_axes_are_hierarchical(name):
    transform, make = CASES[name]
    key = kf.key(SEED)
    x = make().reshape(2, 3, *make().shape[1:])
    batched = transform(key, x, batch_axes=2)
    for i, j in [(0, 0), (1, 2)]:
        assert_bitwise_equal(batched[i, j], transform(kf.at(key, (i, j)), x[i, j]))


@pytest.mark.bitwise
@pytest.mark.parametrize("name", ["dropout", "gaussian_noise", "contrast", "brightness", "cutout"])
def test_jit_and_eager_agree(name):
    transform, make = CASES[name]
    key, x = kf.key(SEED), make()
    single = jax.jit(lambda k, v: transform(k, v))
    batched = jax.jit(lambda k, v: transform(k, v, batch_axes=1))
    assert_bitwise_equal(batched(key, x), transform(key, x, batch_axes=1))
    assert_bitwise_equal(single(key, x[0]), transform(key, x[0]))


@pytest.mark.bitwise
@pytest.mark.parametrize("name", ["dropout", "contrast", "random_crop", "compose"])
def test_size_independence_of_row_i(name):
    transform, make = CASES[name]
    key, x = kf.key(SEED), make()
    assert_bitwise_equal(transform(key, x[:3], batch_axes=1), transform(key, x, batch_axes=1)[:3])


# -- dropout ------------------------------------------------------------------------------------

@pytest.mark.bitwise
def test_dropout_rate_0_and_1():
    x = images((B, 8))
    assert T.dropout(kf.key(0), x, 0.0, batch_axes=1) is x
    assert_bitwise_equal(T.dropout(kf.key(0), x, 1.0, batch_axes=1), jnp.zeros_like(x))
    assert bool(T.dropout_mask(kf.key(0), (B, 8), 0.0, batch_axes=1).all())
    assert not bool(T.dropout_mask(kf.key(0), (B, 8), 1.0, batch_axes=1).any())


@pytest.mark.bitwise
def test_dropout_scales_kept_values_and_matches_its_mask():
    key, x = kf.key(SEED), images((B, 50)) + 1.0  # no zeros in x
    y = T.dropout(key, x, 0.25, batch_axes=1)
    mask = T.dropout_mask(key, x.shape, 0.25, batch_axes=1)
    assert_bitwise_equal(y != 0, mask)
    assert_bitwise_equal(y[mask], x[mask] / 0.75)


def test_dropout_keep_fraction():
    # 200_000 Bernoulli(0.7) trials: std of the fraction is 0.001; a 6-sigma band fails with
    # probability about 2e-9 (and the seed is fixed, so the test is deterministic).
    mask = T.dropout_mask(kf.key(SEED), (2000, 100), 0.3, batch_axes=1)
    assert abs(float(mask.mean()) - 0.7) < 6 * np.sqrt(0.7 * 0.3 / mask.size)
    rows = {bytes(np.asarray(r)) for r in mask}
    assert len(rows) == 2000, "every example has its own mask"


def test_gaussian_noise_moments():
    # 100_000 normals: the sample mean has std 0.0032 and the sample std about 0.0022 (times the
    # scale); 6-sigma bands fail with probability about 4e-9 each.
    y = T.gaussian_noise(kf.key(SEED), jnp.full((1000, 100), 3.0), 2.0, batch_axes=1)
    assert abs(float(y.mean()) - 3.0) < 6 * 2.0 / np.sqrt(y.size)
    assert abs(float(y.std()) - 2.0) < 6 * 2.0 / np.sqrt(2 * y.size)


# -- augmentation -------------------------------------------------------------------------------

def test_flip_decision_varies_across_a_batch():
    # 64 independent fair decisions: all equal with probability 2**-63.
    x = images((64, 4, 5, 1))
    y = T.flip_left_right(kf.key(SEED), x, batch_axes=1)
    flipped = np.array([bool((y[i] == x[i, :, ::-1]).all()) for i in range(64)])
    kept = np.array([bool((y[i] == x[i]).all()) for i in range(64)])
    assert (flipped ^ kept).all(), "each image is either flipped or unchanged"
    assert 0 < flipped.sum() < 64
    up_down = T.flip_up_down(kf.key(SEED), x, batch_axes=1)
    assert 0 < sum(bool((up_down[i] == x[i, ::-1]).all()) for i in range(64)) < 64


def test_brightness_delta_is_one_value_per_image_in_range():
    x = images((B, 6, 6, 3))
    y = T.brightness(kf.key(SEED), x, 0.2, batch_axes=1)
    deltas = np.asarray(y - x).reshape(B, -1)
    assert np.allclose(deltas, deltas[:, :1], atol=1e-6)
    assert (np.abs(deltas[:, 0]) <= 0.2 + 1e-6).all()
    assert len(set(np.round(deltas[:, 0], 5))) == B


def test_contrast_keeps_channel_means_and_scales_deviations():
    x = images((B, 8, 8, 3))
    y = T.contrast(kf.key(SEED), x, 0.5, 1.5, batch_axes=1)
    assert np.allclose(y.mean(axis=(1, 2)), x.mean(axis=(1, 2)), atol=1e-5)
    dev_x = x - x.mean(axis=(1, 2), keepdims=True)
    dev_y = y - y.mean(axis=(1, 2), keepdims=True)
    factors = (dev_y * dev_x).sum(axis=(1, 2, 3)) / (dev_x**2).sum(axis=(1, 2, 3))
    assert ((factors > 0.5 - 1e-4) & (factors < 1.5 + 1e-4)).all()
    assert np.allclose(dev_y, factors[:, None, None, None] * dev_x, atol=1e-5)


@pytest.mark.bitwise
def test_random_crop_is_a_window_of_the_padded_image():
    x = images((B, 9, 7, 3))
    size, pad = (6, 5), 2
    y = T.random_crop(kf.key(SEED), x, size, padding=pad, batch_axes=1)
    assert y.shape == (B, 6, 5, 3)
    padded = np.pad(np.asarray(x), [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    for i in range(B):
        top, left = np.asarray(jax.random.randint(kf.at(kf.key(SEED), i), (2,), 0, np.array([13 - 6 + 1, 11 - 5 + 1])))
        assert_bitwise_equal(y[i], padded[i, top:top + 6, left:left + 5])
    offsets = {tuple(np.asarray(jax.random.randint(kf.at(kf.key(SEED), i), (2,), 0, np.array([8, 7]))))
               for i in range(B)}
    assert len(offsets) > 1, "crops differ across the batch"


@pytest.mark.bitwise
def test_cutout_fills_one_clipped_rectangle_per_image():
    x = images((B, 10, 10, 2)) + 1.0
    y = T.cutout(kf.key(SEED), x, (4, 3), fill=0.0, batch_axes=1)
    for i in range(B):
        holes = np.asarray((y[i] == 0).all(axis=-1))
        rows, cols = np.nonzero(holes)
        assert 0 < holes.sum() <= 12
        assert holes[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all(), "a rectangle"
        assert_bitwise_equal(y[i][~holes], x[i][~holes])


# -- compose ------------------------------------------------------------------------------------

@pytest.mark.bitwise
def test_compose_keys_by_name_so_adding_a_step_changes_nothing_else():
    crop = functools.partial(T.random_crop, size=7, padding=2)
    before = T.compose(flip=T.flip_left_right, crop=crop)
    after = T.compose(flip=T.flip_left_right, tint=functools.partial(T.brightness, max_delta=0.0), crop=crop)
    key, x = kf.key(SEED), images((16, 7, 7, 3))
    assert_bitwise_equal(after(key, x, batch_axes=1), before(key, x, batch_axes=1))
    # flips and brightness commute, so reordering them changes nothing: each keeps its own key
    tint = functools.partial(T.brightness, max_delta=0.3)
    one = T.compose(flip=T.flip_left_right, tint=tint)
    other = T.compose([("tint", tint), ("flip", T.flip_left_right)])
    assert_bitwise_equal(other(key, x, batch_axes=1), one(key, x, batch_axes=1))


@pytest.mark.bitwise
def test_compose_gives_each_step_its_named_key():
    probe = T.compose(a=lambda k, x: x + jax.random.key_data(k), b=lambda k, x: x * 0 + jax.random.key_data(k))
    key = kf.key(SEED)
    out = probe(key, jnp.zeros(2, jnp.uint32))
    assert_bitwise_equal(out, jax.random.key_data(kf.named(key, "b")))
    assert probe.names == ("a", "b")


# -- errors -------------------------------------------------------------------------------------

def test_errors_name_the_argument():
    key = kf.key(0)
    with pytest.raises(ValueError, match=r"image must be an HWC image .*batch_axes=1"):
        T.flip_left_right(key, images((B, 4, 4, 3)))
    with pytest.raises(ValueError, match=r"rate must be at most 1\.0, got 1\.5"):
        T.dropout(key, images((4,)), 1.5)
    with pytest.raises(TypeError, match="x must have a floating dtype, got int32"):
        T.dropout(key, jnp.arange(4), 0.5)
    with pytest.raises(ValueError, match="batch_axes=3 but x has only 2 axes"):
        T.gaussian_noise(key, images((2, 3)), batch_axes=3)
    with pytest.raises(ValueError, match=r"size \(20, 20\) is larger than the padded image"):
        T.random_crop(key, images((9, 7, 3)), 20, padding=1)
    with pytest.raises(ValueError, match=r"upper must be at least 0\.8"):
        T.contrast(key, images((4, 4, 3)), 0.8, 0.5)
    with pytest.raises(TypeError, match="key must be a key"):
        T.cutout(np.float32(3.0), images((4, 4, 3)), 2)
    with pytest.raises(ValueError, match="key must be a single key"):
        T.dropout(kf.fan_out(key, 2), images((2, 4)), 0.5, batch_axes=1)
    with pytest.raises(ValueError, match="step name 'flip' is used twice"):
        T.compose([("flip", T.flip_left_right), ("flip", T.flip_up_down)])
    with pytest.raises(TypeError, match="step 'crop' must be callable"):
        T.compose(crop=3)
