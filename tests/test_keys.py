"""keyfan.keys: seeds, fan-out, at, step, named and example-id keys (DESIGN §2, guarantees 1, 2,
4, 5 and 7)."""

from __future__ import annotations

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keyfan as kf
from tests.conftest import assert_bitwise_equal, examples, key_bits

# -- kf.key -------------------------------------------------------------------------------------

@pytest.mark.bitwise
@pytest.mark.parametrize("seed", [0, 5, -1, 2**31, 2**32 + 7, 2**40 + 5, 2**63, -(2**63), 2**64 - 1])
def test_key_maps_seeds_as_prngkey_under_x64(seed):
    with jax.enable_x64(True):
        expected = np.asarray(jax.random.PRNGKey(np.uint64(seed) if seed >= 2**63 else seed))
    assert_bitwise_equal(key_bits(kf.key(seed)), expected)


@pytest.mark.bitwise
def test_no_two_seeds_share_a_key():
    # JAX's 32-bit default silently drops the high word; kf.key does not.
    assert np.array_equal(jax.random.PRNGKey(2**40 + 5), jax.random.PRNGKey(5))
    assert not np.array_equal(key_bits(kf.key(2**40 + 5)), key_bits(kf.key(5)))
    seeds = [-(2**63), -1, 0, 1, 2**32 - 1, 2**32, 2**63 - 1]
    assert len({key_bits(kf.key(s)).tobytes() for s in seeds}) == len(seeds)
    seeds = [0, 1, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
    assert len({key_bits(kf.key(s)).tobytes() for s in seeds}) == len(seeds)
    # As PRNGKey under x64, a negative seed s is the int64 bit pattern of s + 2**64.
    assert_bitwise_equal(key_bits(kf.key(-1)), key_bits(kf.key(2**64 - 1)))


@pytest.mark.bitwise
def test_key_carries_its_stream_and_x64_does_not_matter():
    for stream in ("threefry", "threefry-legacy"):
        k = kf.key(2**40 + 5, stream)
        assert kf.stream_of(k) == stream and f"keyfan.{stream}" in str(k.dtype)
        with jax.enable_x64(True):
            assert_bitwise_equal(key_bits(kf.key(2**40 + 5, stream)), key_bits(k))


@pytest.mark.bitwise
@pytest.mark.parametrize("seed", [0, -1, 7, -(2**31), 2**31 - 1])
def test_traced_seed_equals_concrete(seed):
    # An int32 seed keeps its width (zero-extended, as JAX's PRNGKey); a Python int traced by
    # jit arrives weakly typed and maps as the int itself.
    traced = jax.jit(kf.key)(jnp.int32(seed))
    assert_bitwise_equal(key_bits(traced), key_bits(kf.key(np.int32(seed))))
    assert_bitwise_equal(key_bits(jax.jit(kf.key)(seed)), key_bits(kf.key(seed)))
    assert_bitwise_equal(key_bits(jax.jit(kf.key)(jnp.uint32(seed % 2**32))), key_bits(kf.key(seed % 2**32)))


@pytest.mark.parametrize("bad,error", [(2.5, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                                       (True, TypeError), (2**64, ValueError), (-(2**63) - 1, ValueError),
                                       ("1", TypeError), (None, TypeError), (np.ones(2), TypeError)], ids=repr)
def test_key_rejects_bad_seeds(bad, error):
    with pytest.raises(error, match="seed"):
        kf.key(bad)


def test_key_rejects_unknown_streams():
    with pytest.raises(ValueError, match="stream"):
        kf.key(0, stream="philox")


# -- Key arguments --------------------------------------------------------------------------------

@pytest.mark.bitwise
def test_raw_and_jax_typed_keys_are_accepted_and_given_back_in_kind(stream):
    raw = jax.random.PRNGKey(4)
    out = kf.fan_out(raw, (3,), stream=stream)
    assert out.dtype == jnp.uint32 and out.shape == (3, 2)
    assert_bitwise_equal(out, jax.random.split(raw, 3))
    typed = jax.random.key(4)
    out = kf.fan_out(typed, (3,), stream=stream)
    assert jax.random.key_impl(out) == "threefry2x32"
    assert_bitwise_equal(key_bits(out), jax.random.split(raw, 3))


def test_foreign_and_malformed_keys_are_refused():
    with pytest.raises(TypeError, match="rbg"):
        kf.fan_out(jax.random.key(0, impl="rbg"), 3)
    with pytest.raises(TypeError, match=r"kf\.key\(0\)"):
        kf.fan_out(0, 3)
    with pytest.raises(TypeError, match="uint32"):
        kf.fan_out(jnp.array([0, 1], jnp.int32), 3)
    with pytest.raises(ValueError, match="single key"):
        kf.fan_out(kf.fan_out(kf.key(0), 2), 3)
    with pytest.raises(ValueError, match="stream"):
        kf.fan_out(kf.key(0), 3, stream="threefry-legacy")


# -- fan_out and at -------------------------------------------------------------------------------

@pytest.mark.bitwise
@pytest.mark.parametrize("n", [0, 1, 2, 5, 33, 2049])
def test_fan_out_1d_equals_split(stream, n):
    key = kf.key(9, stream)
    assert_bitwise_equal(key_bits(kf.fan_out(key, (n,))), key_bits(jax.random.split(key, n)))
    raw = jax.random.PRNGKey(9)  # the stream fixture sets JAX's flag to match `stream`
    assert_bitwise_equal(kf.fan_out(raw, n, stream=stream), jax.random.split(raw, n))


@pytest.mark.bitwise
def test_nested_fan_out_is_hierarchical(stream):
    key = kf.key(1, stream)
    keys = kf.fan_out(key, (3, 4, 2))
    assert keys.shape == (3, 4, 2)
    sizes = (3, 4, 2)
    for index in [(0, 0, 0), (2, 3, 1), (1, 2, 0)]:
        alone = kf.at(key, index, batch_shape=sizes)
        assert_bitwise_equal(key_bits(keys[index]), key_bits(alone))
        step_by_step = kf.at(kf.at(kf.at(key, index[0], batch_shape=3), index[1], batch_shape=4), index[2],
                             batch_shape=2)
        assert_bitwise_equal(key_bits(alone), key_bits(step_by_step))
    # keys[i] is the fan-out of the i-th key.
    assert_bitwise_equal(key_bits(keys[1]), key_bits(kf.fan_out(kf.at(key, 1, batch_shape=3), (4, 2))))


@pytest.mark.bitwise
@settings(max_examples=examples(15), deadline=None)
@given(a=st.integers(1, 6), b=st.integers(1, 6), a2=st.integers(1, 6), b2=st.integers(1, 6))
def test_threefry_coordinates_do_not_depend_on_batch_sizes(a, b, a2, b2):
    key = kf.key(3)
    small, large = kf.fan_out(key, (a, b)), kf.fan_out(key, (a2, b2))
    i, j = min(a, a2) - 1, min(b, b2) - 1
    assert_bitwise_equal(key_bits(small[i, j]), key_bits(large[i, j]))
    assert_bitwise_equal(key_bits(small[i, j]), key_bits(kf.at(key, (i, j))))


@pytest.mark.bitwise
def test_flat_grid_moves_keys_but_fan_out_does_not():
    key = kf.key(0)
    grid = lambda b: jax.random.split(key, 2 * b).reshape(2, b)  # noqa: E731
    assert not np.array_equal(key_bits(grid(3)[1, 0]), key_bits(grid(4)[1, 0]))
    assert_bitwise_equal(key_bits(kf.fan_out(key, (2, 3))[1, 0]), key_bits(kf.fan_out(key, (2, 4))[1, 0]))


@pytest.mark.bitwise
def test_legacy_keys_depend_on_the_batch_size_and_at_requires_it():
    key = kf.key(0, "threefry-legacy")
    assert not np.array_equal(key_bits(kf.fan_out(key, 3)[0]), key_bits(kf.fan_out(key, 4)[0]))
    with pytest.raises(ValueError, match="batch_shape"):
        kf.at(key, 1)
    assert_bitwise_equal(key_bits(kf.at(key, 3, batch_shape=5)), key_bits(kf.fan_out(key, 5)[3]))


@pytest.mark.parametrize("index", [2**32 - 1, 2**32, 2**32 + 5, 2**40 + 3, 2**64 - 1])
def test_at_uses_the_64_bit_counter_of_partitionable_split(index):
    # JAX's partitionable split gives key i the hash of the counter (i >> 32, i & 0xFFFFFFFF).
    key = kf.key(7)
    k0, k1 = (jnp.uint32(v) for v in key_bits(key))
    hi, lo = jnp.uint32(index >> 32), jnp.uint32(index & 0xFFFFFFFF)
    expected = jax.extend.random.threefry2x32_p.bind(k0, k1, hi, lo)
    assert key_bits(kf.at(key, index)).tolist() == [int(expected[0]), int(expected[1])]


@pytest.mark.bitwise
def test_at_with_traced_index_equals_concrete():
    key = kf.key(2)
    traced = jax.jit(lambda k, i, j: kf.at(k, (i, j)))(key, jnp.int32(3), jnp.uint32(5))
    assert_bitwise_equal(key_bits(traced), key_bits(kf.at(key, (3, 5))))
    scanned = jax.lax.map(lambda i: kf.at(key, i), jnp.arange(6))
    assert_bitwise_equal(key_bits(scanned), key_bits(kf.fan_out(key, 6)))


@pytest.mark.parametrize("index,batch_shape,error,match", [
    (-1, None, ValueError, "index"), (2.5, None, ValueError, "index"), (True, None, TypeError, "index"),
    ((1, 2), (3,), ValueError, "coordinate"), ((1, 5), (3, 4), ValueError, r"index\[1\]"),
    (2**64, None, ValueError, "index"), (3, (2,), ValueError, "index"),
], ids=repr)
def test_at_rejects_bad_indices(index, batch_shape, error, match):
    with pytest.raises(error, match=match):
        kf.at(kf.key(0), index, batch_shape=batch_shape)


@pytest.mark.parametrize("shape,error", [((-1,), ValueError), ((2.5,), ValueError), ((True,), TypeError),
                                         ("3", TypeError), ((2**32,), ValueError)], ids=repr)
def test_fan_out_rejects_bad_shapes(shape, error):
    with pytest.raises(error, match="batch_shape"):
        kf.fan_out(kf.key(0), shape)


# -- step and named ---------------------------------------------------------------------------

@pytest.mark.bitwise
@pytest.mark.parametrize("t", [0, 1, 99, 2**32 - 1])
def test_step_is_fold_in(stream, t):
    key = kf.key(5, stream)
    assert_bitwise_equal(key_bits(kf.step(key, t)), key_bits(jax.random.fold_in(key, t)))
    traced = jax.jit(kf.step)(key, jnp.uint32(t))
    assert_bitwise_equal(key_bits(traced), key_bits(kf.step(key, t)))


@pytest.mark.bitwise
def test_step_keeps_the_high_word():
    key = kf.key(5)
    assert not np.array_equal(key_bits(kf.step(key, 2**32 + 1)), key_bits(kf.step(key, 1)))
    with pytest.raises(ValueError, match="t"):
        kf.step(key, -1)


@pytest.mark.bitwise
def test_named_streams_are_stable_distinct_and_unambiguous():
    key = kf.key(0)
    assert_bitwise_equal(key_bits(kf.named(key, "dropout")), key_bits(kf.named(key, "dropout")))
    names = [f"layer{i}/dropout" for i in range(500)] + ["", "dropout", "noise"]
    assert len({key_bits(kf.named(key, n)).tobytes() for n in names}) == len(names)
    ab_c = kf.named(kf.named(key, "AB"), "C")
    a_bc = kf.named(kf.named(key, "A"), "BC")
    assert not np.array_equal(key_bits(ab_c), key_bits(a_bc))
    with pytest.raises(TypeError, match="name"):
        kf.named(key, 3)


# -- example_keys -----------------------------------------------------------------------------

@pytest.mark.bitwise
def test_example_keys_equal_fan_out_over_arange():
    key = kf.key(8)
    assert_bitwise_equal(key_bits(kf.example_keys(key, jnp.arange(10))), key_bits(kf.fan_out(key, 10)))
    assert_bitwise_equal(key_bits(kf.example_keys(key, np.arange(10), step=3)),
                         key_bits(kf.fan_out(kf.step(key, 3), 10)))


@pytest.mark.bitwise
def test_example_keys_are_invariant_to_permutation_padding_and_micro_batching(stream):
    key = kf.key(1, stream)
    ids = np.array([17, 3, 99, 4, 2**33 + 1, 0])
    keys = key_bits(kf.example_keys(key, ids, step=12))
    perm = np.random.default_rng(0).permutation(len(ids))
    assert_bitwise_equal(key_bits(kf.example_keys(key, ids[perm], step=12)), keys[perm])
    padded = np.concatenate([ids, [0, 0, 0]])
    assert_bitwise_equal(key_bits(kf.example_keys(key, padded, step=12))[: len(ids)], keys)
    halves = [key_bits(kf.example_keys(key, part, step=12)) for part in np.split(ids, 2)]
    assert_bitwise_equal(np.concatenate(halves), keys)
    # One example's key, recomputed alone, under jit with traced ids.
    alone = jax.jit(lambda k, i: kf.example_keys(k, i, step=12))(key, jnp.array([99]))
    assert_bitwise_equal(key_bits(alone)[0], keys[2])
    # Different steps give different keys.
    assert not np.array_equal(key_bits(kf.example_keys(key, ids, step=13)), keys)


@pytest.mark.bitwise
def test_example_keys_with_ids_closed_over_inside_jit():
    key = kf.key(2)
    ids = jnp.array([5, 1, 9])
    inside = jax.jit(lambda k: kf.example_keys(k, ids, step=4))(key)
    assert_bitwise_equal(key_bits(inside), key_bits(kf.example_keys(key, ids, step=4)))


@pytest.mark.bitwise
def test_example_ids_keep_their_high_word_without_x64():
    key = kf.key(0)
    a = key_bits(kf.example_keys(key, np.array([2**40 + 7], dtype=np.int64)))
    b = key_bits(kf.example_keys(key, np.array([7])))
    assert not np.array_equal(a, b)
    assert_bitwise_equal(a[0], key_bits(kf.at(key, 2**40 + 7)))


@pytest.mark.parametrize("ids,error", [(np.array([1, -2]), ValueError), (np.array([1.0, 2.0]), TypeError),
                                       (np.array([True]), TypeError), (jnp.array([-1, 2]), ValueError),
                                       ("abc", TypeError)], ids=repr)
def test_example_keys_reject_bad_ids(ids, error):
    with pytest.raises(error, match="ids"):
        kf.example_keys(kf.key(0), ids)
