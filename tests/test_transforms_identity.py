"""Row identity of every transform over shapes, dtypes and jit/eager: example ``i`` of a batched
call equals the single call with ``kf.at(key, i)``, bit for bit, in all four combinations of
(batched eager | batched jitted) x (single eager | single jitted).

This is the test that catches XLA rounding a formula differently in two programs: for
``x + scale * z`` the CPU backend contracted the multiply and the add into one fused
multiply-add in the vectorised loop of one shape and not in another (13 of 192 values of a
``(2, 8, 8, 3)`` batch differed from the single calls; 2-D inputs matched).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keyfan as kf
from keyfan import transforms as T
from tests.conftest import assert_bitwise_equal

pytestmark = pytest.mark.bitwise

SEED = 2024

IMAGE_SHAPES = [(2, 8, 8, 3), (3, 9, 7, 3), (2, 5, 4, 1), (2, 16, 16, 3)]
ANY_SHAPES = [(3, 7), (2, 8, 8, 3), (2, 33), (2, 4, 5, 6, 2)]
DTYPES = ["float32", "bfloat16", "float16"]

IMAGE = {
    "flip_left_right": T.flip_left_right,
    "flip_up_down": functools.partial(T.flip_up_down, p=0.3),
    "brightness": functools.partial(T.brightness, max_delta=0.2),
    "contrast": functools.partial(T.contrast, lower=0.5, upper=1.5),
    "random_crop": functools.partial(T.random_crop, size=(4, 3), padding=1),
    "cutout": functools.partial(T.cutout, size=3, fill=0.5),
    "compose": T.compose(flip=T.flip_left_right, crop=functools.partial(T.random_crop, size=4, padding=1),
                         bright=functools.partial(T.brightness, max_delta=0.3),
                         contrast=functools.partial(T.contrast, lower=0.7, upper=1.3),
                         noise=functools.partial(T.gaussian_noise, scale=0.1)),
}
ANY = {
    "gaussian_noise": functools.partial(T.gaussian_noise, scale=0.1),
    "gaussian_noise_odd_scale": functools.partial(T.gaussian_noise, scale=0.37),
    "dropout": functools.partial(T.dropout, rate=0.3),
}
FAST = {("float32", (2, 8, 8, 3)), ("float32", (3, 7)), ("bfloat16", (2, 8, 8, 3))}
"""The default run (one 16-bit float: bfloat16 and float16 take the same uint16 path); the rest
of the shape x dtype matrix is marked slow."""
MOVES_DATA_ONLY = {"flip_left_right", "flip_up_down", "random_crop", "cutout"}
"""Transforms without arithmetic on the values (selects, slices, a fill): no rounding for a
dtype to change, so the default run checks them in float32 only, and the slow tier in a 16-bit
float at one shape (``MOVES_16_BIT``) besides every float32 shape."""
MOVES_16_BIT = ("bfloat16", (2, 8, 8, 3))


def _cases():
    named = [(n, s) for n in IMAGE for s in IMAGE_SHAPES] + [(n, s) for n in ANY for s in ANY_SHAPES]
    for dtype in DTYPES:
        for name, shape in named:
            if dtype != "float32" and (name == "compose" or shape == (2, 16, 16, 3)):
                continue  # eager compose compiles every step per call: float32 covers it
            if dtype != "float32" and name in MOVES_DATA_ONLY and (dtype, shape) != MOVES_16_BIT:
                continue  # the same selects and slices as at MOVES_16_BIT and at float32
            fast = (dtype, shape) in FAST and not (dtype != "float32" and name in MOVES_DATA_ONLY)
            yield pytest.param(name, shape, dtype, id=f"{name}-{'x'.join(map(str, shape))}-{dtype}",
                               marks=() if fast else pytest.mark.slow)


def data(shape, dtype):
    """Values in [0, 1) with a full mantissa (so a different rounding shows)."""
    return jnp.asarray(np.random.default_rng(sum(shape)).random(shape, dtype=np.float64), dtype)


@pytest.mark.parametrize(("name", "shape", "dtype"), list(_cases()))
def test_row_i_equals_single_call_eager_and_jitted(name, shape, dtype):
    transform = {**IMAGE, **ANY}[name]
    key, x = kf.key(SEED), data(shape, dtype)
    batched_eager = transform(key, x, batch_axes=1)
    batched_jit = jax.jit(lambda k, v: transform(k, v, batch_axes=1))(key, x)
    single_jit = jax.jit(lambda k, v: transform(k, v))
    assert_bitwise_equal(batched_jit, batched_eager)
    for i in range(shape[0]):
        ki = kf.at(key, i)
        assert_bitwise_equal(batched_eager[i], transform(ki, x[i]))
        assert_bitwise_equal(batched_eager[i], single_jit(ki, x[i]))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_noise_inside_a_users_jitted_program_keeps_row_identity(dtype):
    """The transform called inside a larger jitted program whose next op could contract with it."""
    key, x = kf.key(SEED), data((2, 8, 8, 3), dtype)

    @jax.jit
    def batched(k, v):
        return T.gaussian_noise(k, v, 0.1, batch_axes=1) * 3 + 1

    @jax.jit
    def single(k, v):
        return T.gaussian_noise(k, v, 0.1) * 3 + 1

    out = batched(key, x)
    for i in range(2):
        assert_bitwise_equal(out[i], single(kf.at(key, i), x[i]))
