"""The pinned streams: each equals JAX under the matching ``jax_threefry_partitionable`` value,
whatever the global flag says, and golden values pin them across JAX versions."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keyfan as kf
from keyfan.streams import STREAMS, get_stream
from tests.conftest import PARTITIONABLE, assert_bitwise_equal, key_bits
from tests.conftest import STREAMS as STREAM_NAMES

SHAPES = [(), (1,), (2,), (3,), (7,), (2, 5), (0,), (1000,), (4099,)]
"""Draw shapes; 32-bit draws of 4099 values are computed two at a time (``keyfan._flat``)."""


def _jax_reference(stream: str, fn):
    """``fn()`` computed by JAX's own Threefry under the flag value matching ``stream``."""
    with jax.threefry_partitionable(PARTITIONABLE[stream]):
        return fn()


@pytest.mark.bitwise
@pytest.mark.parametrize("global_flag,stream", [
    # Each stream under the flag that does not match it, in the default tier: keyfan's keys must
    # not follow the flag. Under the matching flag (slow tier) JAX's own path gives the same bits,
    # and the conformance suite (tests/conformance, default flag) checks these functions there.
    pytest.param(True, "threefry", marks=pytest.mark.slow), (False, "threefry"),
    (True, "threefry-legacy"), pytest.param(False, "threefry-legacy", marks=pytest.mark.slow)], ids=str)
@pytest.mark.parametrize("seed", [0, 1, 42, 2**31 - 1, 2**32 - 1])
def test_typed_keys_equal_jax_whatever_the_global_flag(stream, global_flag, seed):
    raw = jax.random.PRNGKey(seed)
    typed = kf.key(seed, stream)
    with jax.threefry_partitionable(global_flag):
        ours = {
            "split": [key_bits(jax.random.split(typed, n)) for n in (1, 2, 3, 5, 2049)],
            "fold_in": key_bits(jax.random.fold_in(typed, 12345)),
            "normal": [jax.random.normal(typed, s) for s in SHAPES],
            "bits8": [jax.random.bits(typed, s, jnp.uint8) for s in SHAPES],
            "bits16": [jax.random.bits(typed, s, jnp.uint16) for s in SHAPES],
            "uniform_bf16": jax.random.uniform(typed, (9,), jnp.bfloat16),
            "randint": jax.random.randint(typed, (5,), -7, 300),
        }
    theirs = _jax_reference(stream, lambda: {
        "split": [np.asarray(jax.random.split(raw, n)) for n in (1, 2, 3, 5, 2049)],
        "fold_in": np.asarray(jax.random.fold_in(raw, 12345)),
        "normal": [jax.random.normal(raw, s) for s in SHAPES],
        "bits8": [jax.random.bits(raw, s, jnp.uint8) for s in SHAPES],
        "bits16": [jax.random.bits(raw, s, jnp.uint16) for s in SHAPES],
        "uniform_bf16": jax.random.uniform(raw, (9,), jnp.bfloat16),
        "randint": jax.random.randint(raw, (5,), -7, 300),
    })
    for name in ours:
        a, b = ours[name], theirs[name]
        for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b], strict=True):
            assert_bitwise_equal(x, y)


@pytest.mark.bitwise
@pytest.mark.parametrize("stream", STREAM_NAMES)
def test_vmapped_draws_equal_jax(stream):
    typed = kf.key(3, stream)
    raw = jax.random.PRNGKey(3)
    ours = jax.vmap(lambda k: jax.random.normal(k, (3,)))(jax.random.split(typed, 6))
    theirs = _jax_reference(stream, lambda: jax.vmap(lambda k: jax.random.normal(k, (3,)))(jax.random.split(raw, 6)))
    assert_bitwise_equal(ours, theirs)


@pytest.mark.bitwise
@pytest.mark.parametrize("stream", STREAM_NAMES)
@pytest.mark.parametrize("seed", [0, -1, 2**40 + 5, 2**63 - 1, -(2**63), 2**64 - 1])
def test_64_bit_draws_and_seeds_equal_jax_under_x64(stream, seed):
    with jax.enable_x64(True):
        raw = jax.random.PRNGKey(np.uint64(seed % 2**64) if seed >= 2**63 else seed)
        typed = kf.key(seed, stream)
        assert_bitwise_equal(key_bits(typed), raw)
        ours = [jax.random.normal(typed, (5,), jnp.float64), jax.random.bits(typed, (4,), jnp.uint64)]
        theirs = _jax_reference(stream, lambda: [jax.random.normal(raw, (5,), jnp.float64),
                                                 jax.random.bits(raw, (4,), jnp.uint64)])
        for a, b in zip(ours, theirs, strict=True):
            assert_bitwise_equal(a, b)


# Golden values, computed once with keyfan on jax 0.10.2. keyfan computes its streams itself, so
# these must hold on every JAX version keyfan supports.
GOLDEN = {
    "threefry": {
        "fan_out": [[0x6D3E048F, 0x1022172D], [0x03D7B32D, 0xADD083F4], [0x92FB20EA, 0x0F38D913]],
        "normal": [0x3D9B7ED9, 0xBEF901E7, 0x3FA5293A, 0x3F1B135A, 0x3F4C8E27, 0xBF68AF71],
        "randint": [[724, 411, 219, 281], [85, 72, 304, 172]],
    },
    "threefry-legacy": {
        "fan_out": [[0xBAD56946, 0xDE837C89], [0xDF4F11DF, 0x354BA891], [0x2FC69B62, 0x8CDB9797]],
        "normal": [0x3F221FFE, 0x3F760A22, 0x3FAE68E9, 0xBF114AF8, 0x3E919BCF, 0xBF6E9B89],
        "randint": [[150, 264, 153, 766], [485, 467, 511, 61]],
    },
}


@pytest.mark.bitwise
@pytest.mark.parametrize("stream", STREAM_NAMES)
@pytest.mark.parametrize("global_flag", [True, False])
def test_golden_values(stream, global_flag):
    key = kf.key(42, stream)
    golden = GOLDEN[stream]
    with jax.threefry_partitionable(global_flag):
        assert key_bits(kf.fan_out(key, (3,))).tolist() == golden["fan_out"]
        assert np.asarray(kf.normal(key, batch=(2,), shape=(3,))).view(np.uint32).ravel().tolist() == golden["normal"]
        assert np.asarray(kf.randint(key, batch=(2,), shape=(4,), minval=0, maxval=1000)).tolist() == golden["randint"]
        # The same values through jax.random on the typed key.
        keys = jax.random.split(key, 2)
        assert np.asarray(jax.vmap(lambda k: jax.random.normal(k, (3,)))(keys)).view(np.uint32).ravel().tolist() \
            == golden["normal"]


def test_get_stream_errors():
    assert get_stream("threefry") is STREAMS["threefry"]
    with pytest.raises(ValueError, match="stream must be one of"):
        get_stream("philox")
    with pytest.raises(TypeError, match="stream"):
        get_stream(3)


@pytest.mark.parametrize("stream", STREAM_NAMES)
def test_draw_size_limits(stream):
    # keyfan's own samplers index one example's values in 32 bits; jax.random on a keyfan key
    # has JAX's limits: none on the legacy block layout, 2**64 values on "threefry" (JAX raises
    # the same NotImplementedError).
    impl = STREAMS[stream]
    with pytest.raises(ValueError, match="per example"):
        impl.check_draw_size(2**32, 32)
    impl.check_jax_draw_size(2**40, 32)
    if stream == "threefry":
        with pytest.raises(NotImplementedError, match="exceeding 2 \\*\\* 64"):
            impl.check_jax_draw_size(2**64 + 1, 8)
    else:
        impl.check_jax_draw_size(2**64 + 1, 8)


def test_eager_split_and_bits_compile_once(caplog):
    # JAX calls a PRNG implementation's functions outside jit for eager jax.random calls; keyfan's
    # are jitted, so a Python loop of eager splits compiles once (it used to take 0.17 s a call).
    key = kf.key(0)
    jax.random.split(key, 3), jax.random.bits(key, (5,)), jax.random.normal(key, (5,))
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        for seed in range(3):
            k = kf.key(seed)
            jax.random.split(k, 3), jax.random.bits(k, (5,)), jax.random.normal(k, (5,))
    compiles = [r.getMessage()[:80] for r in caplog.records if "Compiling" in r.getMessage()]
    assert not compiles, compiles
