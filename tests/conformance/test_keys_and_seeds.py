"""Keys from seeds, split and fold_in: every way to make a keyfan key gives JAX's key data.

* ``jax.random.key``/``PRNGKey`` with a keyfan implementation, eager and jitted, give exactly
  JAX's Threefry key data under the current ``jax_enable_x64`` (JAX's own table,
  ``test_prng_seeds_and_keys``), including its ``OverflowError`` for a Python int outside int32
  under ``jit`` in 32-bit mode.
* ``kf.key`` gives the x64 column of that table whatever the flag says.
* ``split``/``fold_in`` agree with JAX on both streams, and on ``"threefry"`` have JAX's
  symmetry ``split(key, n)[i] == fold_in(key, i)`` (eager, jit and vmap with ``axis_index``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keyfan as kf
from keyfan.streams import STREAMS as STREAM_IMPLS
from tests.conformance import known_answers as ka
from tests.conformance._support import STREAMS, assert_same_outcome, flags, jax_key, keyfan_key, outcome, reference, x64
from tests.conftest import LEGACY_SLOW

pytestmark = pytest.mark.bitwise


def _data(key):
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    return np.asarray(jax.random.key_data(key) if typed else key).tolist()


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("ctor", ["key", "PRNGKey"])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("case", ka.SEEDS, ids=lambda c: f"{c[1].__name__}({c[0]})")
def test_jax_constructors_with_keyfan_impl(case, jit, ctor, stream):
    # Issue 14, case 1: jax.random.key(2**31 + 99, impl=keyfan) gave [0xFFFFFFFF, 2**31 + 99].
    seed, typ, with_x64, without_x64 = case
    impl = STREAM_IMPLS[stream].spec
    make = getattr(jax.random, ctor)
    def ours(s):
        return make(s, impl=impl)

    def theirs(s):
        return make(s)

    if jit:
        ours, theirs = jax.jit(ours), jax.jit(theirs)
    expected = with_x64 if x64() else without_x64
    if jit and typ is int and not x64() and not -(2**31) <= seed < 2**31:
        # JAX refuses the int at the jit boundary in 32-bit mode, before any implementation.
        with pytest.raises(OverflowError):
            ours(typ(seed))
        return
    assert _data(ours(typ(seed))) == expected, flags()
    assert _data(theirs(typ(seed))) == expected, flags()  # the table itself, on JAX's threefry


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("case", ka.SEEDS, ids=lambda c: f"{c[1].__name__}({c[0]})")
def test_kf_key_maps_seeds_as_jax_under_x64(case, jit):
    # Issue 14, case 2: kf.key(np.int32(-2)) gave [0xFFFFFFFF, 0xFFFFFFFE]; JAX gives [0, 0xFFFFFFFE].
    seed, typ, with_x64, without_x64 = case
    if jit and typ is int and not x64() and not -(2**31) <= seed < 2**31:
        pytest.skip("JAX refuses a Python int outside int32 at the jit boundary in 32-bit mode")
    expected = with_x64
    if jit and typ is np.int64 and not x64():
        expected = without_x64  # jit narrows a NumPy int64 argument to int32 before kf.key sees it
    make = jax.jit(kf.key, static_argnums=1) if jit else kf.key
    for stream in STREAMS:
        assert _data(make(typ(seed), stream)) == expected, (stream, flags())


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"])
def test_every_integer_seed_dtype(dtype):
    if np.dtype(dtype).itemsize == 8 and not x64():
        pytest.skip("64-bit seeds need x64")
    info = np.iinfo(dtype)
    seeds = [np.dtype(dtype).type(v % 2**info.bits if info.min == 0 else v)
             for v in (0, 1, -1, -2, 77, int(info.max), int(info.min))]
    impl = STREAM_IMPLS["threefry"].spec
    for s in seeds:
        assert _data(jax.random.key(s, impl=impl)) == _data(jax.random.key(s)), (dtype, s, flags())
        assert _data(jax.jit(lambda x: jax.random.key(x, impl=impl))(jnp.asarray(s))) == _data(jax.random.key(s))
        with jax.enable_x64(True):
            assert _data(kf.key(s)) == _data(jax.random.key(s)), (dtype, s)


@pytest.mark.parametrize("stream", LEGACY_SLOW)  # legacy split and fold_in: tests/streams/test_streams.py
def test_split_and_fold_in_equal_jax(stream):
    def program(key):
        return {
            "split": [jax.random.split(key, n) for n in (1, 2, 3, 7, 100)],
            "split2d": jax.random.split(key, (2, 3)),
            "fold_in": [jax.random.fold_in(key, d) for d in (0, 1, 12345, 2**31, 2**32 - 1)],
            "nested": jax.random.split(jax.random.fold_in(jax.random.split(key)[1], 9), 4),
            "vmap": jax.vmap(lambda k: jax.random.split(k, 3))(jax.random.split(key, 5)),
            "vmap_fold_in": jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(4, dtype=jnp.uint32)),
            "clone": jax.random.clone(key),
        }
    for seed in (0, 42, 2**32 - 1):
        ours, theirs = keyfan_key(seed, stream), jax_key(seed)
        for mode, fn in (("eager", program), ("jit", jax.jit(program))):
            assert_same_outcome(outcome(fn, ours), reference(stream, outcome, fn, theirs),
                                f"{mode} seed {seed} {stream!r}")


def test_threefry_split_fold_in_symmetry():
    # JAX's test_threefry_split_fold_in_symmetry and its vmapped form (jax issue 7708).
    key = kf.key(72)
    folded = [jax.random.fold_in(key, i) for i in range(3)]
    split = jax.random.split(key, 3)
    by_index = jax.vmap(lambda k, _: jax.random.fold_in(k, jax.lax.axis_index("batch")),
                        in_axes=(None, 0), axis_name="batch")(key, jnp.ones(3))
    for i in range(3):
        assert _data(folded[i]) == _data(split[i]) == _data(by_index[i])
