"""The Threefry-2x32 hash: known-answer vectors and equality with JAX's own primitive."""

from __future__ import annotations

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np
import pytest

from keyfan.streams._threefry2x32 import threefry2x32

pytestmark = pytest.mark.bitwise

# Known-answer tests from the Random123 distribution (also in JAX's random tests).
KAT = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("key,counter,expected", KAT)
def test_known_answers(key, counter, expected):
    words = [jnp.uint32(v) for v in (*key, *counter)]
    out = threefry2x32(*words)
    assert (int(out[0]), int(out[1])) == expected


def test_equals_jax_primitive_on_random_words():
    rng = np.random.default_rng(0)
    k0, k1, x0, x1 = (jnp.asarray(rng.integers(0, 2**32, size=4096, dtype=np.uint32)) for _ in range(4))
    ours = threefry2x32(k0, k1, x0, x1)
    theirs = jax.extend.random.threefry2x32_p.bind(k0, k1, x0, x1)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_broadcasts_scalar_keys_over_counters_under_jit():
    x = jnp.arange(10, dtype=jnp.uint32)
    eager = threefry2x32(jnp.uint32(1), jnp.uint32(2), jnp.zeros_like(x), x)
    jitted = jax.jit(threefry2x32)(jnp.uint32(1), jnp.uint32(2), jnp.zeros_like(x), x)
    assert eager[0].shape == (10,)
    np.testing.assert_array_equal(np.asarray(eager[0]), np.asarray(jitted[0]))
