"""JAX's published known answers (``known_answers.py``), on keyfan's streams.

Random123's Threefry-2x32 vectors hold for keyfan's hash; JAX's values for ``random_bits``,
``split``, ``fold_in``, ``randint`` and every distribution of ``_RANDOM_VALUES_CASES`` hold on the
``"threefry-legacy"`` stream, through ``kf.key`` and through ``jax.random.key``/``PRNGKey`` with
keyfan's implementation, whatever the global ``jax_threefry_partitionable`` flag says.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keyfan as kf
from keyfan.streams import STREAMS as STREAM_IMPLS
from keyfan.streams._threefry2x32 import threefry2x32
from tests.conformance import known_answers as ka
from tests.conformance._support import allow_x64_dtypes, assert_same_outcome, flags, outcome, x64

pytestmark = pytest.mark.bitwise

LEGACY = STREAM_IMPLS["threefry-legacy"].spec


def _legacy_keys(seed):
    """The legacy key of ``seed`` made every way that gives a typed keyfan key (``PRNGKey``
    gives raw key data, which jax.random reads with JAX's default implementation)."""
    return {
        "kf.key": kf.key(seed, "threefry-legacy"),
        "jax.random.key": jax.random.key(seed, impl=LEGACY),
        "wrap_key_data(PRNGKey)": jax.random.wrap_key_data(jax.random.PRNGKey(seed, impl=LEGACY), impl=LEGACY),
    }


@pytest.mark.parametrize("case", range(len(ka.THREEFRY2X32)))
def test_threefry2x32_random123_vectors(case):
    key, count, expected = ka.THREEFRY2X32[case]
    words = [jnp.uint32(w) for w in (*key, *count)]
    for fn in (threefry2x32, jax.jit(threefry2x32)):
        out = fn(*words)
        assert [int(x) for x in out] == list(expected), f"{fn}: {[hex(int(x)) for x in out]}"


@pytest.mark.parametrize("maker", ["kf.key", "jax.random.key", "wrap_key_data(PRNGKey)"])
def test_random_bits_known_answers(maker):
    key = _legacy_keys(1701)[maker]
    for dtype in ("uint8", "uint16", "uint32"):
        assert np.asarray(jax.random.bits(key, (3,), dtype)).tolist() == ka.BITS_1701[dtype], (dtype, flags())
    if allow_x64_dtypes():
        out = jax.random.bits(key, (3,), jnp.uint64)
        assert out.dtype == np.uint64 and np.asarray(out).tolist() == ka.BITS_1701["uint64"], flags()


@pytest.mark.parametrize("maker", ["kf.key", "jax.random.key", "wrap_key_data(PRNGKey)"])
def test_split_fold_in_randint_known_answers(maker):
    key = _legacy_keys(0)[maker]
    assert np.asarray(jax.random.key_data(jax.random.split(key, 4))).tolist() == ka.SPLIT_0_4
    assert np.asarray(jax.random.key_data(jax.random.fold_in(key, 4))).tolist() == ka.FOLD_IN_0_4
    assert np.asarray(jax.random.randint(key, (3, 3), 0, 8, "int32")).tolist() == ka.RANDINT_0_INT32
    if x64():
        assert np.asarray(jax.random.randint(key, (3, 3), 0, 8, "int64")).tolist() == ka.RANDINT_0_INT64


@pytest.mark.parametrize("case", ka.DISTRIBUTIONS, ids=lambda c: f"{c[0]}-{c[2]}")
def test_distribution_known_answers(case):
    name, shape, dtype, params, expected, rtol, on_x64 = case
    if on_x64 is not None and on_x64 != x64():
        pytest.skip(f"JAX's value holds only with jax_enable_x64={on_x64}")
    key = kf.key(ka.distribution_seed(name), "threefry-legacy")
    if name == "poisson":  # jax.random.poisson refuses non-built-in implementations
        actual = kf.poisson(key, batch=(), shape=shape, dtype=dtype, **params)
    else:
        fn = getattr(jax.random, name)
        actual = fn(key, **params, shape=shape, dtype=dtype) if dtype else fn(key, **params, shape=shape)
    expected = np.asarray(expected)
    if expected.dtype.kind in "biu":
        assert np.asarray(actual).tolist() == expected.tolist(), flags()
    else:
        np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol or 1e-6, atol=1e-6,
                                   err_msg=flags())


@pytest.mark.skipif(not hasattr(jax.config, "jax_explicit_x64_dtypes"), reason="the flag exists from JAX 0.8")
def test_uint64_draws_with_explicit_x64_dtypes_allowed():
    # Issue 14, case 3: under jax_explicit_x64_dtypes="allow" (x64 off), uint64 draws raised
    # "lax.shift_left requires arguments to have the same dtypes" on both streams.
    with _allow():
        for stream, partitionable in (("threefry", True), ("threefry-legacy", False)):
            ours = jax.random.bits(kf.key(1701, stream), (3,), jnp.uint64)
            with jax.threefry_partitionable(partitionable):
                theirs = jax.random.bits(jax.random.key(1701), (3,), jnp.uint64)
            assert ours.dtype == theirs.dtype == np.uint64
            assert np.asarray(ours).tolist() == np.asarray(theirs).tolist(), stream
            if stream == "threefry-legacy":
                assert np.asarray(ours).tolist() == ka.BITS_1701["uint64"]
            for draw in (lambda k: jax.random.uniform(k, (4,), jnp.float64),
                         lambda k: jax.random.normal(k, (4,), jnp.float64),
                         lambda k: jax.random.randint(k, (4,), 0, 2**40, jnp.int64)):
                jitted = jax.jit(draw)
                with jax.threefry_partitionable(partitionable):
                    theirs = outcome(jitted, jax.random.key(3))
                assert_same_outcome(outcome(jitted, kf.key(3, stream)), theirs, f"64-bit draw on {stream!r}")


def _allow():
    from jax._src import config  # JAX's own tests set the flag with this context manager
    return config.explicit_x64_dtypes("allow")
