"""keyfan._flat: a loop gives the values of its index function exactly, however it is run (one
value at a time, two at a time as the parts of a complex64, block by block)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from keyfan import _flat
from keyfan.streams._threefry2x32 import threefry2x32
from tests.conftest import assert_bitwise_equal

pytestmark = pytest.mark.bitwise

KEY = jnp.array([0x12345678, 0x9ABCDEF0], np.uint32)


def _hash(key, index):
    """uint32 words of index ``index`` (uint32, any shape) under ``key``."""
    return threefry2x32(key[0], key[1], jnp.zeros_like(index), index)


def _scalar_values(dtype):
    """One value per index: hashed bits, viewed as ``dtype`` (every bit pattern occurs, NaNs too)."""
    def values(span, key, offset):
        a, b = _hash(key, span.index())
        return jax.lax.bitcast_convert_type(a ^ b, dtype) if dtype != np.float32 else (
            jax.lax.bitcast_convert_type(a ^ b, np.float32) + span.take(offset))
    return values


def _expected_scalar(dtype, size, offset):
    a, b = _hash(KEY, jnp.arange(size, dtype=np.uint32))
    out = jax.lax.bitcast_convert_type(a ^ b, dtype)
    return out + offset[:size] if dtype == np.float32 else out


def _uses_complex(fn, *args) -> bool:
    return "complex" in str(jax.make_jaxpr(fn)(*args))


@pytest.mark.parametrize("dtype", [np.uint32, np.int32, np.float32])
@pytest.mark.parametrize("size", [1, 63, 4095, 4096, 4097, 10_001])
def test_flat_loop_equals_its_values(dtype, size):
    offset = jnp.linspace(-3.0, 3.0, size, dtype=np.float32)

    def run(key, offset):
        return _flat.flat_loop(_scalar_values(dtype), size, key, offset)

    assert_bitwise_equal(jax.jit(run)(KEY, offset), _expected_scalar(dtype, size, offset))
    assert _uses_complex(run, KEY, offset) == (size >= _flat.PAIRED_MIN_SIZE)


def test_bool_and_16_bit_values_run_one_at_a_time():
    def run(key):
        return _flat.flat_loop(lambda span, k: (_hash(k, span.index())[0] & 1) == 1, 5000, key)

    a, _ = _hash(KEY, jnp.arange(5000, dtype=np.uint32))
    assert_bitwise_equal(jax.jit(run)(KEY), (a & 1) == 1)
    assert not _uses_complex(run, KEY)


@pytest.mark.parametrize("size", [4096, 2049, 2051, 31])
def test_rows_loops_equal_their_rows(size):
    # align=1: each index is a row of 70 values; an odd number of rows is paired once it is >= 64
    def values(span, key):
        position = jax.lax.broadcasted_iota(np.uint32, (span.length, 70), 1)
        row = span.index()[:, None]
        a, b = _hash(key, row * np.uint32(70) + position)
        return a ^ b

    def run(key):
        return _flat.flat_loop(values, size, key, align=1)

    a, b = _hash(KEY, jnp.arange(size * 70, dtype=np.uint32))
    assert_bitwise_equal(jax.jit(run)(KEY), (a ^ b).reshape(size, 70))
    assert _uses_complex(run, KEY) == (size * 70 >= _flat.PAIRED_MIN_SIZE and (size % 2 == 0 or size >= 64))


@pytest.mark.parametrize("size", [5 * 512, 5 * 512 + 384, 9 * 512 + 1])
def test_blocks_of_a_large_loop_equal_one_loop(monkeypatch, size):
    # Blocks of 512 values: loops over more than 4 blocks run block by block (a loop), with a
    # tail block; per-index arrays are sliced at traced offsets.
    monkeypatch.setattr(_flat, "BLOCK_VALUES", 512)
    monkeypatch.setattr(_flat, "PAIRED_MIN_SIZE", 256)
    offset = jnp.linspace(-3.0, 3.0, size, dtype=np.float32)

    def run(key, offset):
        return _flat.flat_loop(_scalar_values(np.float32), size, key, offset)

    jaxpr = str(jax.make_jaxpr(run)(KEY, offset))
    assert "scan[" in jaxpr or "while[" in jaxpr
    assert_bitwise_equal(jax.jit(run)(KEY, offset), _expected_scalar(np.float32, size, offset))


def test_key_pairs_per_index_run_one_at_a_time():
    # fan_out's shape, (size, 2) uint32: a flat loop with a trailing axis of 2 does not vectorise
    # when paired (a vmapped split of 10**6 keys took 3x longer), so it runs one index at a time
    def run(key):
        return _flat.flat_loop(lambda span, k: jnp.stack(_hash(k, span.index()), -1), 5000, key)

    a, b = _hash(KEY, jnp.arange(5000, dtype=np.uint32))
    assert_bitwise_equal(jax.jit(run)(KEY), jnp.stack([a, b], -1))
    assert not _uses_complex(run, KEY)


def test_float32_bit_patterns_pass_through_pairs_unchanged():
    # Paired float32 values are the parts of a complex64: signalling NaNs, NaN payloads,
    # subnormals and -0.0 must come back bit for bit.
    special = np.array([0x7F800001, 0x7FBFFFFF, 0x7FC00001, 0xFF800001, 0x00000001, 0x80000000, 0x7F800000],
                       np.uint32)
    patterns = np.concatenate([np.resize(special, 2500), np.arange(2500, dtype=np.uint32) * np.uint32(1717)])
    x = jnp.asarray(patterns.view(np.float32))

    def run(key, x):
        return _flat.flat_loop(lambda span, k, x: span.take(x), x.shape[0], key, x)

    assert _uses_complex(run, KEY, x)
    assert np.asarray(jax.jit(run)(KEY, x)).view(np.uint32).tobytes() == patterns.tobytes()
