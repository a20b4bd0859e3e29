"""keyfan.sample: every sampler equals the canonical split + vmap bit for bit, on both streams,
and its rows do not depend on batch size, chunking, offsets, jit or the global flags."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keyfan as kf
from keyfan import _kernel
from tests.conftest import (
    LEGACY_SLOW,
    PARTITIONABLE,
    STREAMS,
    assert_bitwise_equal,
    canonical_draw,
    examples,
    half_floats,
)

LOGITS = jnp.log(jnp.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]]))

# (name, keyfan call, canonical per-example call)
CASES = [
    ("normal", lambda k, b, s: kf.normal(k, batch=b, shape=s), lambda s: lambda k: jax.random.normal(k, s)),
    ("normal_bf16", lambda k, b, s: kf.normal(k, batch=b, shape=s, dtype=jnp.bfloat16),
     lambda s: lambda k: jax.random.normal(k, s, jnp.bfloat16)),
    ("normal_f16", lambda k, b, s: kf.normal(k, batch=b, shape=s, dtype=jnp.float16),
     lambda s: lambda k: jax.random.normal(k, s, jnp.float16)),
    ("normal_c64", lambda k, b, s: kf.normal(k, batch=b, shape=s, dtype=jnp.complex64),
     lambda s: lambda k: jax.random.normal(k, s, jnp.complex64)),
    ("uniform", lambda k, b, s: kf.uniform(k, batch=b, shape=s, minval=-2.0, maxval=3.0),
     lambda s: lambda k: jax.random.uniform(k, s, minval=-2.0, maxval=3.0)),
    ("bits8", lambda k, b, s: kf.bits(k, batch=b, shape=s, dtype=jnp.uint8),
     lambda s: lambda k: jax.random.bits(k, s, jnp.uint8)),
    ("bits16", lambda k, b, s: kf.bits(k, batch=b, shape=s, dtype=jnp.uint16),
     lambda s: lambda k: jax.random.bits(k, s, jnp.uint16)),
    ("bits32", lambda k, b, s: kf.bits(k, batch=b, shape=s), lambda s: lambda k: jax.random.bits(k, s, jnp.uint32)),
    ("bernoulli", lambda k, b, s: kf.bernoulli(k, batch=b, shape=s, p=0.3),
     lambda s: lambda k: jax.random.bernoulli(k, 0.3, s)),
    ("bernoulli_high", lambda k, b, s: kf.bernoulli(k, batch=b, shape=s, p=0.3, mode="high"),
     lambda s: lambda k: jax.random.bernoulli(k, 0.3, s, mode="high")),
    ("randint", lambda k, b, s: kf.randint(k, batch=b, shape=s, minval=-3, maxval=10),
     lambda s: lambda k: jax.random.randint(k, s, -3, 10)),
    ("randint_u8_full", lambda k, b, s: kf.randint(k, batch=b, shape=s, dtype=jnp.uint8, minval=0, maxval=256),
     lambda s: lambda k: jax.random.randint(k, s, 0, 256, jnp.uint8)),
    ("randint_i8", lambda k, b, s: kf.randint(k, batch=b, shape=s, dtype=jnp.int8, minval=-200, maxval=100),
     lambda s: lambda k: jax.random.randint(k, s, -200, 100, jnp.int8)),
    ("randint_u32_span", lambda k, b, s: kf.randint(k, batch=b, shape=s, dtype=jnp.uint32, minval=5, maxval=2**31 - 1),
     lambda s: lambda k: jax.random.randint(k, s, 5, 2**31 - 1, jnp.uint32)),
    ("truncated_normal", lambda k, b, s: kf.truncated_normal(k, batch=b, shape=s, lower=-1.0, upper=2.0),
     lambda s: lambda k: jax.random.truncated_normal(k, -1.0, 2.0, s)),
    ("gumbel", lambda k, b, s: kf.gumbel(k, batch=b, shape=s), lambda s: lambda k: jax.random.gumbel(k, s, mode="low")),
    ("gumbel_high", lambda k, b, s: kf.gumbel(k, batch=b, shape=s, mode="high"),
     lambda s: lambda k: jax.random.gumbel(k, s, mode="high")),
]


# (batch, shape) pairs covering: a plain batch, nested batches, no batch, N = 0, N = 1, n = 0,
# multi-dimensional events, and each way of reading row keys (keyfan._kernel): hashed per element
# (small event), gathered (8..63 values, or a nested batch) and broadcast (>= 64 values).
COMBOS = [((5,), ()), ((3, 4), (3,)), ((), (2, 5)), ((1,), (70,)), ((0,), (3,)), ((2, 1, 3), (0,)),
          ((5,), (9,)), ((0,), (9,)), ((0, 3), (2,)), ((0,), (70,))]
CORE = {"normal", "uniform", "bits32", "bernoulli", "randint"}
"""Samplers checked on every combo; the others (dtype and mode variants, which share the core's
kernel paths) on one combo of each kind: nested, no batch, gathered keys, N = 0, broadcast keys."""
VARIANT_COMBOS = [COMBOS[i] for i in (1, 2, 6, 7, 3)]
EVERY_COMBO = {"normal", "bits32"}
"""Core samplers checked on every combo in the default tier (a float and a raw-bits path); the
other core samplers there on ``CORE_COMBOS`` (a plain batch, a nested one, broadcast row keys),
their other combos (the same kernel paths again, which ``EVERY_COMBO`` and the variants take on
every kind of combo) in the slow tier."""
CORE_COMBOS = [COMBOS[0], COMBOS[1], COMBOS[3]]


def _canonical_cases():
    """Every sampler on both streams. The default tier, on ``"threefry"``: ``EVERY_COMBO`` on every
    combo, the other core samplers on ``CORE_COMBOS``, the variants on one of each kind
    (``VARIANT_COMBOS``); on the legacy stream: ``EVERY_COMBO`` (a float and the raw
    bits) on one combo of each kind, since the legacy stream differs only in how raw bits come from
    a key and every sampler reads them through the same kernel paths. The slow tier: the rest (the
    same kernel paths again)."""
    slow = [pytest.mark.slow]
    rest = [c for c in COMBOS if c not in VARIANT_COMBOS]
    for stream in STREAMS:
        for name, ours, theirs in CASES:
            if stream == "threefry" and name in EVERY_COMBO:
                yield pytest.param(stream, name, ours, theirs, COMBOS, id=f"{stream}-{name}")
            elif stream == "threefry" and name in CORE:
                yield pytest.param(stream, name, ours, theirs, CORE_COMBOS, id=f"{stream}-{name}")
                yield pytest.param(stream, name, ours, theirs, [c for c in COMBOS if c not in CORE_COMBOS], marks=slow,
                                   id=f"{stream}-{name}-other-combos")
            elif stream == "threefry":
                yield pytest.param(stream, name, ours, theirs, VARIANT_COMBOS, id=f"{stream}-{name}")
            elif name in CORE:
                yield pytest.param(stream, name, ours, theirs, VARIANT_COMBOS, id=f"{stream}-{name}",
                                   marks=[] if name in EVERY_COMBO else slow)
                yield pytest.param(stream, name, ours, theirs, rest, marks=slow, id=f"{stream}-{name}-other-combos")
            else:
                yield pytest.param(stream, name, ours, theirs, VARIANT_COMBOS, marks=slow, id=f"{stream}-{name}")


@pytest.mark.bitwise
@pytest.mark.parametrize("stream_name,name,ours,theirs,combos", list(_canonical_cases()))
def test_sampler_equals_canonical(stream_name, name, ours, theirs, combos):
    with jax.threefry_partitionable(PARTITIONABLE[stream_name]):
        key = kf.key(7, stream_name)
        for batch, shape in combos:
            assert_bitwise_equal(ours(key, batch, shape), canonical_draw(theirs(shape), key, batch))


# Draws of PAIRED_MIN_SIZE (4096) values or more run two values at a time (keyfan._flat), draws of
# more than 4 * 2**18 values block by block. One combo per kernel path at that size: per-value
# hashing (n = 1, n = 3), gathered row keys (nested, n = 9), rows loops (an odd row count of odd
# length, padded by one row; one row of even length, looped over as two half-rows).
PAIRED_COMBOS = [((4099,), ()), ((1500,), (3,)), ((30, 20), (9,)), ((65,), (71,)), ((), (5000,))]
_BY_NAME = {name: (ours, theirs) for name, ours, theirs in CASES}


@pytest.mark.bitwise
@pytest.mark.parametrize(("stream", "name"), [
    ("threefry", "normal"), ("threefry", "bits32"), ("threefry", "uniform"), ("threefry", "randint"),
    ("threefry-legacy", "bits32"),
    # the same paired kernel over the legacy stream's bits again:
    pytest.param("threefry-legacy", "normal", marks=pytest.mark.slow),
    pytest.param("threefry-legacy", "uniform", marks=pytest.mark.slow),
    pytest.param("threefry-legacy", "randint", marks=pytest.mark.slow)], indirect=["stream"])
def test_paired_draws_equal_canonical(stream, name):
    ours, theirs = _BY_NAME[name]
    key = kf.key(17, stream)
    # every combo for "threefry"'s normal and bits32; two (values and rows loops) for the others
    every = name in ("normal", "bits32") and stream == "threefry"
    for batch, shape in PAIRED_COMBOS if every else PAIRED_COMBOS[1::2]:
        assert_bitwise_equal(ours(key, batch, shape), canonical_draw(theirs(shape), key, batch))


@pytest.mark.bitwise
def test_paired_draws_with_per_example_parameters():
    key = kf.key(8)
    keys = kf.fan_out(key, 3000)
    lo = jnp.linspace(-5.0, 5.0, 3000)[:, None]
    assert_bitwise_equal(kf.uniform(key, batch=3000, shape=3, minval=lo, maxval=lo + 2),
                         jax.vmap(lambda k, a: jax.random.uniform(k, (3,), minval=a, maxval=a + 2))(keys, lo))
    hi = jnp.arange(1, 3001)[:, None]
    assert_bitwise_equal(kf.randint(key, batch=3000, shape=3, minval=0, maxval=hi),
                         jax.vmap(lambda k, m: jax.random.randint(k, (3,), 0, m))(keys, hi))
    # 33 rows of 200: looped over as 66 half-rows, each reading its half of the parameters
    lo = jnp.linspace(-5.0, 5.0, 33 * 200).reshape(33, 200)
    assert_bitwise_equal(kf.uniform(key, batch=33, shape=200, minval=lo, maxval=lo + 2),
                         jax.vmap(lambda k, a: jax.random.uniform(k, (200,), minval=a, maxval=a + 2))(keys[:33], lo))


@pytest.mark.bitwise
@pytest.mark.parametrize("batch,shape,dtype,chunk_size", [
    (5000, (), jnp.float32, None),  # a paired loop over values
    (33, (200,), jnp.float32, None),  # a paired loop over half-rows
    (10, (3,), jnp.float32, 4),  # chunked
    (10, (3,), jnp.bfloat16, 4),  # chunked, held as uint16
], ids=str)
def test_derivatives_through_parameters_equal_canonical(batch, shape, dtype, chunk_size):
    # Values travel through complex numbers and bitcasts, whose own derivatives are zero; the
    # derivatives must be the canonical pattern's.
    key = kf.key(4)
    keys = kf.fan_out(key, batch)
    lo = jnp.linspace(-1.0, 1.0, batch, dtype=dtype).reshape(batch, *(1,) * len(shape))

    def ours(lo):
        return kf.uniform(key, batch=batch, shape=shape, dtype=dtype, minval=lo, maxval=3 * lo + 2,
                          chunk_size=chunk_size)

    def theirs(lo):
        return jax.vmap(lambda k, a: jax.random.uniform(k, shape, dtype, minval=a, maxval=3 * a + 2))(keys, lo)

    ones = jnp.ones_like(lo)
    assert_bitwise_equal(jax.jvp(ours, (lo,), (ones,))[1], jax.jvp(theirs, (lo,), (ones,))[1])
    weights = jnp.linspace(0.5, 1.5, batch * math.prod(shape), dtype=dtype).reshape(batch, *shape)
    np.testing.assert_allclose(np.asarray(jax.grad(lambda lo: (ours(lo) * weights).sum())(lo), np.float32),
                               np.asarray(jax.grad(lambda lo: (theirs(lo) * weights).sum())(lo), np.float32),
                               rtol=1e-2 if dtype == jnp.bfloat16 else 1e-6)


@pytest.mark.bitwise
def test_vmap_over_keys_of_paired_draws():
    # Under vmap the lax.cond around each loop becomes a select over both branches.
    keys = kf.fan_out(kf.key(0), 3)
    for draw in (lambda k: kf.normal(k, batch=5000), lambda k: kf.normal(k, batch=33, shape=200)):
        out = jax.vmap(draw)(keys)
        for i in range(3):
            assert_bitwise_equal(out[i], draw(keys[i]))


@pytest.mark.bitwise
@pytest.mark.parametrize("stream", LEGACY_SLOW, indirect=True)
@pytest.mark.parametrize("batch,shape", [((1_100_003,), ()), ((1101,), (1000,))], ids=str)
def test_draws_computed_block_by_block_equal_canonical(stream, batch, shape):
    # More than 4 blocks of 2**18 values: a loop over blocks and a tail, over values or over
    # half-rows (an odd row count), with per-example parameters sliced at traced offsets.
    key = kf.key(23, stream)
    assert_bitwise_equal(kf.normal(key, batch=batch, shape=shape),
                         canonical_draw(lambda k: jax.random.normal(k, shape), key, batch))
    lo = jnp.linspace(-3.0, 3.0, batch[0]).reshape(batch[0], *(1,) * len(shape))
    assert_bitwise_equal(kf.uniform(key, batch=batch, shape=shape, minval=lo, maxval=lo + 1),
                         jax.jit(jax.vmap(lambda k, a: jax.random.uniform(k, shape, minval=a, maxval=a + 1)))(
                             kf.fan_out(key, batch), lo))


# One compiled canonical program per sampler; keys are arguments, so new seeds cost no compile.
_SEED_CASES = [(ours, jax.jit(jax.vmap(theirs((3,))))) for name, ours, theirs in CASES
               if name in {"normal", "uniform", "bits32", "bernoulli", "randint", "truncated_normal", "gumbel"}]
_CANONICAL_CATEGORICAL = jax.jit(jax.vmap(lambda k: jax.random.categorical(k, LOGITS, shape=(3, 2))))


@pytest.mark.bitwise
@settings(max_examples=examples(30), deadline=None)
@given(seed=st.integers(-(2**63), 2**64 - 1))
def test_many_seeds_equal_canonical(seed):
    for stream in ("threefry", "threefry-legacy"):
        key = kf.key(seed, stream)
        keys = kf.fan_out(key, (6,))
        for ours, canonical in _SEED_CASES:
            assert_bitwise_equal(ours(key, (6,), (3,)), canonical(keys))
        assert_bitwise_equal(kf.categorical(key, batch=(6,), logits=LOGITS, shape=(3, 2)), _CANONICAL_CATEGORICAL(keys))


@pytest.mark.bitwise
@pytest.mark.parametrize("stream", LEGACY_SLOW, indirect=True)  # legacy: test_many_seeds_equal_canonical
@pytest.mark.parametrize("batch", [pytest.param((6,), marks=pytest.mark.slow), (2, 3)], ids=str)  # nested: both
@pytest.mark.parametrize("axis,shape", [(-1, None), (0, (4, 3)), (1, (5, 2)), (-1, (7, 2))], ids=str)
def test_categorical_equals_canonical(stream, batch, axis, shape):
    key = kf.key(11, stream)
    ours = kf.categorical(key, batch=batch, logits=LOGITS, axis=axis, shape=shape)
    theirs = canonical_draw(lambda k: jax.random.categorical(k, LOGITS, axis=axis, shape=shape), key, batch)
    assert_bitwise_equal(ours, theirs)
    high = kf.categorical(key, batch=batch, logits=LOGITS, axis=axis, shape=shape, mode="high")
    assert_bitwise_equal(high, canonical_draw(
        lambda k: jax.random.categorical(k, LOGITS, axis=axis, shape=shape, mode="high"), key, batch))


@pytest.mark.bitwise
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("stream", LEGACY_SLOW, indirect=True)  # legacy bits: test_sampler_equals_canonical
def test_categorical_with_half_precision_logits(stream, dtype):
    key = kf.key(13, stream)
    logits = LOGITS.astype(dtype)
    assert_bitwise_equal(kf.categorical(key, batch=(40,), logits=logits),
                         canonical_draw(lambda k: jax.random.categorical(k, logits), key, (40,)))


@pytest.mark.bitwise
def test_categorical_with_per_example_logits():
    key = kf.key(2)
    logits = jax.random.normal(jax.random.PRNGKey(0), (5, 4))
    ours = kf.categorical(key, batch=(5,), logits=logits, batched_logits=True)
    theirs = jax.vmap(lambda k, lg: jax.random.categorical(k, lg))(kf.fan_out(key, 5), logits)
    assert_bitwise_equal(ours, theirs)


@pytest.mark.bitwise
def test_per_example_parameters_equal_mapping_them_with_the_keys():
    key = kf.key(4)
    lo = jnp.arange(6.0)[:, None]
    p = jnp.linspace(0.05, 0.95, 6)[:, None]
    keys = kf.fan_out(key, 6)
    assert_bitwise_equal(kf.uniform(key, batch=6, shape=3, minval=lo, maxval=lo + 1),
                         jax.vmap(lambda k, a: jax.random.uniform(k, (3,), minval=a, maxval=a + 1))(keys, lo))
    assert_bitwise_equal(kf.bernoulli(key, batch=6, shape=3, p=p),
                         jax.vmap(lambda k, q: jax.random.bernoulli(k, q, (3,)))(keys, p))
    hi = jnp.array([[3], [7], [1000], [2**20], [5], [6]])
    assert_bitwise_equal(kf.randint(key, batch=6, shape=3, minval=0, maxval=hi),
                         jax.vmap(lambda k, m: jax.random.randint(k, (3,), 0, m))(keys, hi))


@pytest.mark.bitwise
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.complex128])
@pytest.mark.parametrize("stream", LEGACY_SLOW, indirect=True)  # legacy 64-bit bits: tests/streams/test_streams.py
def test_64_bit_dtypes_under_x64(stream, dtype):
    with jax.enable_x64(True):
        key = kf.key(5, stream)
        assert_bitwise_equal(kf.normal(key, batch=(4,), shape=(3,), dtype=dtype),
                             canonical_draw(lambda k: jax.random.normal(k, (3,), dtype), key, (4,)))
        assert_bitwise_equal(kf.bits(key, batch=(4,), shape=(3,), dtype=jnp.uint64),
                             canonical_draw(lambda k: jax.random.bits(k, (3,), jnp.uint64), key, (4,)))
        assert_bitwise_equal(kf.randint(key, batch=(4,), shape=(3,), dtype=jnp.int64, minval=-5, maxval=2**40),
                             canonical_draw(lambda k: jax.random.randint(k, (3,), -5, 2**40, jnp.int64), key, (4,)))


@pytest.mark.bitwise
def test_values_do_not_depend_on_global_flags():
    key = kf.key(3)
    base = kf.normal(key, batch=(50,), shape=(3,))
    with jax.threefry_partitionable(False):
        assert_bitwise_equal(kf.normal(key, batch=(50,), shape=(3,)), base)
    with jax.enable_x64(True):
        assert_bitwise_equal(kf.normal(key, batch=(50,), shape=(3,)), base)


# -- Invariances ----------------------------------------------------------------------------------

@pytest.mark.bitwise
@settings(max_examples=examples(6), deadline=None)
@given(n_small=st.integers(1, 20), n_large=st.integers(20, 60), m=st.integers(1, 5), extra=st.integers(0, 40))
def test_rows_do_not_depend_on_batch_size_and_prefixes_are_stable(n_small, n_large, m, extra):
    key = kf.key(12)
    small, large = kf.normal(key, batch=n_small, shape=m), kf.normal(key, batch=n_large, shape=m + extra)
    # Row i is independent of N, and the first m values of a length-(m + extra) draw are the
    # length-m draw.
    assert_bitwise_equal(large[:n_small, :m], small)


@pytest.mark.bitwise
def test_nested_rows_do_not_depend_on_inner_or_outer_sizes():
    key = kf.key(1)
    assert_bitwise_equal(kf.uniform(key, batch=(3, 4), shape=2)[:2, :3], kf.uniform(key, batch=(2, 3), shape=2))


@pytest.mark.bitwise
def test_row_i_is_the_unbatched_draw_with_at(stream):
    key = kf.key(6, stream)
    out = kf.normal(key, batch=(4, 5), shape=(3,))
    for i, j in [(0, 0), (3, 4), (2, 1)]:
        k = kf.at(key, (i, j), batch_shape=(4, 5))
        assert_bitwise_equal(out[i, j], jax.random.normal(k, (3,)))


@pytest.mark.bitwise
@pytest.mark.parametrize("chunk_size", [pytest.param(1, marks=pytest.mark.slow), 7,
                                        pytest.param(1000, marks=pytest.mark.slow)])
@pytest.mark.parametrize("stream", LEGACY_SLOW, indirect=True)  # chunking reads no raw bits of its own
def test_chunked_equals_unchunked(stream, chunk_size):
    """Chunks of 7 rows (ragged) in the default tier; one row per chunk and one chunk in the slow tier."""
    key = kf.key(2, stream)
    full = kf.normal(key, batch=(50, 2), shape=(3,))
    assert_bitwise_equal(kf.normal(key, batch=(50, 2), shape=(3,), chunk_size=chunk_size), full)
    lo = jnp.arange(50.0)[:, None, None]
    assert_bitwise_equal(kf.uniform(key, batch=(50, 2), shape=3, minval=lo, maxval=lo + 1, chunk_size=chunk_size),
                         kf.uniform(key, batch=(50, 2), shape=3, minval=lo, maxval=lo + 1))
    assert_bitwise_equal(kf.bits(key, batch=(50,), shape=(80,), chunk_size=chunk_size), kf.bits(key, batch=(50,),
                                                                                                shape=(80,)))
    assert_bitwise_equal(kf.normal(key, batch=(50,), shape=(9,), chunk_size=chunk_size), kf.normal(key, batch=(50,),
                                                                                                   shape=(9,)))
    assert_bitwise_equal(kf.normal(key, batch=(0,), shape=(70,), chunk_size=chunk_size), kf.normal(key, batch=(0,),
                                                                                                   shape=(70,)))
    for dtype in half_floats():  # 16-bit floats are written into the result as uint16
        assert_bitwise_equal(kf.normal(key, batch=(50,), shape=(3,), dtype=dtype, chunk_size=chunk_size),
                             kf.normal(key, batch=(50,), shape=(3,), dtype=dtype))


@pytest.mark.bitwise
def test_offset_blocks_concatenate_to_the_whole_batch():
    key = kf.key(9)
    whole = kf.bernoulli(key, batch=30, shape=4, p=0.5)
    blocks = [kf.bernoulli(key, batch=10, shape=4, p=0.5, offset=start) for start in (0, 10, 20)]
    assert_bitwise_equal(jnp.concatenate(blocks), whole)


@pytest.mark.bitwise
@pytest.mark.parametrize("offset", [2**32 - 2, 2**33 + 5, 2**64 - 4])
def test_offsets_past_2_32_use_64_bit_counters(offset):
    # Rows at indices >= 2**32 of a virtual batch of more than 2**32 examples, computed via
    # offset and checked against kf.at, without materialising anything large.
    key = kf.key(21)
    block = kf.normal(key, batch=4, shape=3, offset=offset)
    wide = kf.bits(key, batch=4, shape=100, offset=offset)
    gathered = kf.uniform(key, batch=4, shape=9, offset=offset)
    for i in range(4):
        assert_bitwise_equal(block[i], jax.random.normal(kf.at(key, offset + i), (3,)))
        assert_bitwise_equal(gathered[i], jax.random.uniform(kf.at(key, offset + i), (9,)))
        assert_bitwise_equal(wide[i], jax.random.bits(kf.at(key, offset + i), (100,), jnp.uint32))


@pytest.mark.bitwise
def test_traced_parameters_are_used_as_given():
    key = kf.key(3)
    p = jnp.array([0.2, 0.9])
    jitted = jax.jit(lambda k, p: kf.bernoulli(k, batch=2, shape=4, p=p[:, None]))(key, p)
    assert_bitwise_equal(jitted, kf.bernoulli(key, batch=2, shape=4, p=p[:, None]))


@pytest.mark.bitwise
def test_jit_and_eager_agree():
    key = kf.key(3)
    eager = kf.truncated_normal(key, batch=(7, 3), shape=5, lower=-0.5, upper=0.5)
    jitted = jax.jit(lambda k: kf.truncated_normal(k, batch=(7, 3), shape=5, lower=-0.5, upper=0.5))(key)
    assert_bitwise_equal(jitted, eager)
    raw = jax.random.key_data(key)
    assert_bitwise_equal(jax.jit(lambda k: kf.normal(k, batch=9, shape=2))(raw), kf.normal(key, batch=9, shape=2))


@pytest.mark.bitwise
def test_vmap_over_keys_of_a_sampler():
    keys = kf.fan_out(kf.key(0), 3)
    out = jax.vmap(lambda k: kf.normal(k, batch=4, shape=2))(keys)
    for i in range(3):
        assert_bitwise_equal(out[i], kf.normal(keys[i], batch=4, shape=2))


@pytest.mark.bitwise
def test_automatic_blocking_of_huge_draws_gives_the_same_bits(monkeypatch):
    # Draws beyond _MAX_BLOCK elements are computed block by block; shrink the limit to check
    # the blocking without allocating gigabytes.
    key = kf.key(5)
    expected = canonical_draw(lambda k: jax.random.normal(k, (7,)), key, (53,))
    monkeypatch.setattr(_kernel, "_MAX_BLOCK", 100)
    assert_bitwise_equal(kf.normal(key, batch=(53,), shape=(7,)), expected)
    with pytest.raises(ValueError, match="one row"):
        kf.normal(key, batch=(2,), shape=(101,))


# -- Statistics at a fixed seed ---------------------------------------------------------------------

def test_moments_at_a_fixed_seed():
    # 10**6 draws: the sample mean has sd 1e-3 and the variance sd 1.4e-3; 6-sigma bands fail with
    # probability < 1e-8 per check.
    x = np.asarray(kf.normal(kf.key(0), batch=10**6), np.float64)
    assert abs(x.mean()) < 6e-3 and abs(x.var() - 1) < 9e-3
    b = np.asarray(kf.bernoulli(kf.key(1), batch=10**6, p=0.2), np.float64)
    assert abs(b.mean() - 0.2) < 6 * 4e-4
    u = np.asarray(kf.uniform(kf.key(2), batch=10**6, minval=2.0, maxval=4.0), np.float64)
    assert abs(u.mean() - 3.0) < 6 * 5.8e-4 and u.min() >= 2.0 and u.max() < 4.0
    r = np.asarray(kf.randint(kf.key(3), batch=10**6, minval=0, maxval=10))
    counts = np.bincount(r, minlength=10)
    chi2 = ((counts - 1e5) ** 2 / 1e5).sum()
    assert chi2 < 40  # chi-square, 9 dof: P(chi2 > 40) ~ 7e-6


# -- Errors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("call,error,match", [
    (lambda: kf.normal(kf.key(0), batch=-1), ValueError, "batch"),
    (lambda: kf.normal(kf.key(0), batch=2.5), ValueError, "batch"),
    (lambda: kf.normal(kf.key(0), batch=3, shape=(2, -1)), ValueError, r"shape\[1\]"),
    (lambda: kf.normal(kf.key(0), batch=3, dtype=jnp.int32), TypeError, "dtype"),
    (lambda: kf.normal(kf.key(0), batch=3, dtype=jnp.float64), ValueError, "x64"),
    (lambda: kf.normal(kf.key(0), batch=3, dtype="not-a-dtype"), TypeError, "dtype"),
    (lambda: kf.uniform(kf.key(0), batch=3, shape=2, minval=jnp.zeros(3)), ValueError, "minval"),
    (lambda: kf.bernoulli(kf.key(0), batch=3, p=1), TypeError, "p"),
    (lambda: kf.bernoulli(kf.key(0), batch=3, p=1.5), ValueError, "p must be a probability"),
    (lambda: kf.bernoulli(kf.key(0), batch=3, p=jnp.array([0.5, float("nan"), 0.1])), ValueError, "p"),
    (lambda: kf.uniform(kf.key(0), batch=3, minval=2.0, maxval=1.0), ValueError, "minval"),
    (lambda: kf.uniform(kf.key(0), batch=3, minval="a"), TypeError, "minval"),
    (lambda: kf.uniform(kf.key(0), batch=3, maxval=float("inf")), ValueError, "maxval"),
    (lambda: kf.truncated_normal(kf.key(0), batch=3, lower=1.0, upper=-1.0), ValueError, "lower"),
    (lambda: kf.bernoulli(kf.key(0), batch=3, mode="mid"), ValueError, "mode"),
    (lambda: kf.randint(kf.key(0), batch=3, minval=0.5, maxval=3), TypeError, "minval"),
    (lambda: kf.bits(kf.key(0), batch=3, dtype=jnp.int32), TypeError, "dtype"),
    (lambda: kf.normal(kf.key(0), batch=3, offset=-1), ValueError, "offset"),
    (lambda: kf.normal(kf.key(0), batch=(), offset=2), ValueError, "offset"),
    (lambda: kf.normal(kf.key(0, "threefry-legacy"), batch=3, offset=2), ValueError, "offset"),
    (lambda: kf.normal(kf.key(0), batch=3, chunk_size=0), ValueError, "chunk_size"),
    (lambda: kf.normal(kf.key(0), batch=3, sharding="data"), TypeError, "sharding"),
    (lambda: kf.normal(0, batch=3), TypeError, "key"),
    (lambda: kf.normal(kf.fan_out(kf.key(0), 2), batch=3), ValueError, "single key"),
    (lambda: kf.categorical(kf.key(0), batch=3, logits=jnp.array([1, 2])), TypeError, "logits"),
    (lambda: kf.categorical(kf.key(0), batch=3, logits=LOGITS, axis=2), ValueError, "axis"),
    (lambda: kf.categorical(kf.key(0), batch=3, logits=LOGITS, shape=(4,)), ValueError, "shape"),
    (lambda: kf.categorical(kf.key(0), batch=3, logits=LOGITS, batched_logits=True), ValueError, "batched_logits"),
], ids=lambda v: getattr(v, "__name__", repr(v)))
def test_bad_arguments_are_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(("minval", "maxval"), [(4, 4), (5, 3), (np.array([0, 3]), np.array([1, 3]))])
def test_randint_refuses_an_empty_range(minval, maxval):
    """jax.random.randint returns minval for an empty range, a constant that looks like a draw."""
    with pytest.raises(ValueError, match="minval must be less than maxval"):
        kf.randint(kf.key(0), batch=(2,), minval=minval, maxval=maxval)


SAMPLERS = ["bits", "uniform", "normal", "bernoulli", "randint", "truncated_normal", "gumbel", "categorical",
            "poisson"]


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_positional_shape_is_a_type_error_that_shows_both_readings(name):
    """kf.normal(key, (4, 3)) could mean a batch of 12 or one draw of shape (4, 3), as in JAX:
    every argument after the key is keyword-only, and the error shows both readings."""
    with pytest.raises(TypeError) as err:
        getattr(kf, name)(kf.key(0), (4, 3))
    message = str(err.value)
    assert f"kf.{name} takes every argument after the key by keyword" in message
    assert f"kf.{name}(key, batch=(), shape=(4, 3))" in message and f"jax.random.{name}(key, (4, 3))" in message


@pytest.mark.bitwise
def test_the_fix_the_positional_error_names_gives_jaxs_single_draw():
    key = kf.key(0)
    assert_bitwise_equal(kf.normal(key, batch=(), shape=(4, 3)), jax.random.normal(key, (4, 3)))
    assert_bitwise_equal(kf.normal(key, batch=(4,), shape=(3,)),
                         jax.vmap(lambda k: jax.random.normal(k, (3,)))(kf.fan_out(key, 4)))


@pytest.mark.bitwise
def test_concrete_parameters_closed_over_inside_jit_are_used_as_given():
    """A concrete logits array (or bound) closed over by a jitted function: its value check is
    traced there and cannot run, so the draw proceeds (it raised TracerBoolConversionError)."""
    key, logits, upper = kf.key(0), jnp.log(jnp.array([0.2, 0.3, 0.5])), jnp.float32(2.0)
    for draw in (lambda k: kf.categorical(k, batch=(4,), logits=logits),
                 lambda k: kf.truncated_normal(k, batch=(4,), lower=-1.0, upper=upper)):
        assert_bitwise_equal(jax.jit(draw)(key), draw(key))
