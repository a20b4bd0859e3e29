"""kf.vmap: the three randomness policies against the hand-written split + vmap, bit for bit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import keyfan as kf
from keyfan import _keyflow
from keyfan._keyflow.primitives import declared_shared
from tests.conftest import assert_bitwise_equal, canonical_draw

SEED = 20240917


def noisy(x, key):
    """One example: x plus standard normal noise of x's shape."""
    return x + jax.random.normal(key, x.shape)


def xs_of(n, m=3):
    return jnp.arange(n * m, dtype=jnp.float32).reshape(n, m)


# -- "different" ---------------------------------------------------------------------------------

@pytest.mark.bitwise
def test_different_equals_split_vmap_typed(stream):
    key = kf.key(SEED, stream=stream)
    got = kf.vmap(noisy, in_axes=(0, None), randomness="different")(xs_of(5), key)
    expected = jax.vmap(noisy)(xs_of(5), jax.random.split(key, 5))
    assert_bitwise_equal(got, expected)


@pytest.mark.bitwise
@pytest.mark.parametrize("make", [jax.random.PRNGKey, jax.random.key], ids=["raw", "jax-typed"])
def test_different_equals_jax_split_for_jax_keys(stream, make):
    # JAX's own split, under the flag the fixture sets for this stream: keyfan's stream reproduces it.
    key = make(SEED)
    f = kf.vmap(noisy, in_axes=(0, None), randomness="different", key_argnums=1, stream=stream)
    expected = jax.vmap(noisy)(xs_of(6), jax.random.split(key, 6))
    assert_bitwise_equal(f(xs_of(6), key), expected)


@pytest.mark.bitwise
def test_different_row_i_is_at_key_i_and_size_independent():
    key = kf.key(SEED)
    f = kf.vmap(noisy, in_axes=(0, None), randomness="different")
    small, large = f(xs_of(3), key), f(xs_of(11), key)
    assert_bitwise_equal(small, large[:3])
    for i in (0, 7, 10):
        assert_bitwise_equal(large[i], noisy(xs_of(11)[i], kf.at(key, i)))


@pytest.mark.bitwise
def test_different_nested_equals_fan_out_grid(stream):
    key = kf.key(SEED, stream=stream)
    inner = kf.vmap(lambda x, k: x + jax.random.normal(k), in_axes=(0, None), randomness="different")
    outer = kf.vmap(inner, in_axes=(0, None), randomness="different")
    x = jnp.zeros((3, 4))
    expected = canonical_draw(lambda k: jax.random.normal(k), key, (3, 4))
    assert_bitwise_equal(outer(x, key), expected)
    if stream == "threefry":
        assert_bitwise_equal(outer(x, key)[2, 1], jax.random.normal(kf.at(key, (2, 1))))


@pytest.mark.bitwise
def test_different_jit_and_eager_agree(stream):
    key = kf.key(SEED, stream=stream)
    f = kf.vmap(noisy, in_axes=(0, None), randomness="different")
    assert_bitwise_equal(jax.jit(f)(xs_of(4), key), f(xs_of(4), key))


@pytest.mark.bitwise
def test_mapped_keys_are_used_as_given():
    key = kf.key(SEED)
    keys = jax.random.split(kf.key(SEED + 1), 4)
    for policy in ("different", "error", "same"):
        got = kf.vmap(noisy, randomness=policy)(xs_of(4), keys)
        assert_bitwise_equal(got, jax.vmap(noisy)(xs_of(4), keys))
    # a mapped key and an unmapped one: only the unmapped one is fanned out
    two = kf.vmap(lambda x, k1, k2: noisy(x, k1) + jax.random.uniform(k2), in_axes=(0, 0, None),
                  randomness="different")(xs_of(4), keys, key)
    expected = jax.vmap(lambda x, k1, k2: noisy(x, k1) + jax.random.uniform(k2))(xs_of(4), keys,
                                                                                   kf.fan_out(key, 4))
    assert_bitwise_equal(two, expected)


@pytest.mark.bitwise
def test_pytrees_kwargs_and_out_axes():
    key = kf.key(SEED)

    def f(batch, scale=1.0, *, key):
        return {"y": batch["x"] * scale + jax.random.normal(key, (3,)), "k": batch["c"]}

    batch = {"x": xs_of(5), "c": jnp.float32(2.0)}
    got = kf.vmap(f, in_axes=({"x": 0, "c": None}, None), out_axes={"y": 1, "k": None},
                  randomness="different")(batch, 3.0, key=key)
    keys = kf.fan_out(key, 5)
    expected = jax.vmap(lambda x, k: x * 3.0 + jax.random.normal(k, (3,)))(batch["x"], keys)
    assert_bitwise_equal(got["y"], expected.T)
    assert_bitwise_equal(got["k"], batch["c"])


@pytest.mark.bitwise
def test_keyword_arguments_in_any_order():
    key = kf.key(SEED)

    def f(*, x, key, bias):
        return x + bias + jax.random.normal(key, (3,))

    got = kf.vmap(f, randomness="different")(x=xs_of(4), key=key, bias=jnp.arange(4.0)[:, None])
    expected = jax.vmap(lambda x, k, b: x + b + jax.random.normal(k, (3,)))(xs_of(4), kf.fan_out(key, 4),
                                                                           jnp.arange(4.0)[:, None])
    assert_bitwise_equal(got, expected)
    with pytest.raises(kf.SharedRandomnessError, match="keyword argument 'key'"):
        kf.vmap(f)(x=xs_of(4), key=key, bias=jnp.arange(4.0)[:, None])


@pytest.mark.bitwise
def test_axis_name_collectives_and_axis_size():
    key = kf.key(SEED)

    def f(x, k):
        return x - lax.pmean(x, "batch") + jax.random.normal(k)

    got = kf.vmap(f, in_axes=(0, None), axis_name="batch", randomness="different")(jnp.arange(4.0), key)
    expected = jax.vmap(f, axis_name="batch")(jnp.arange(4.0), kf.fan_out(key, 4))
    assert_bitwise_equal(got, expected)
    # nothing mapped: the batch size comes from axis_size
    only_key = kf.vmap(lambda k: jax.random.normal(k), in_axes=None, axis_size=5, randomness="different")
    assert_bitwise_equal(only_key(key), jax.vmap(lambda k: jax.random.normal(k))(kf.fan_out(key, 5)))


@pytest.mark.bitwise
def test_spmd_axis_name_under_jit():
    key = kf.key(SEED)
    mesh = jax.make_mesh((1,), ("b",))
    with jax.set_mesh(mesh):
        got = jax.jit(kf.vmap(noisy, in_axes=(0, None), randomness="different", spmd_axis_name="b"))(
            xs_of(4), key)
        expected = jax.jit(jax.vmap(noisy, spmd_axis_name="b"))(xs_of(4), kf.fan_out(key, 4))
    assert_bitwise_equal(got, expected)


# -- "same" --------------------------------------------------------------------------------------

@pytest.mark.bitwise
@pytest.mark.keyfan_sanitize("off")  # builds the broadcast key on purpose, as the reference
def test_same_equals_broadcast(stream):
    key = kf.key(SEED, stream=stream)
    got = kf.vmap(noisy, in_axes=(0, None), randomness="same")(jnp.zeros((4, 3)), key)
    assert_bitwise_equal(got, jax.vmap(noisy, in_axes=(0, None))(jnp.zeros((4, 3)), key))
    assert all((got[i] == got[0]).all() for i in range(4)), "one draw shared by the batch"


@pytest.mark.keyfan_sanitize("off")  # builds the broadcast key on purpose, as the reference
def test_same_traces_draws_inside_shared_scope():
    key = kf.key(SEED)
    f = kf.vmap(noisy, in_axes=(0, None), randomness="same")
    closed = jax.make_jaxpr(f)(xs_of(4), key)
    draws = _keyflow.draws(closed, [True, False])
    assert draws, "the draw is found"
    assert all(declared_shared(d.name_stack) for d in draws)
    plain = _keyflow.draws(jax.make_jaxpr(jax.vmap(noisy, in_axes=(0, None)))(xs_of(4), key), [True, False])
    assert not any(declared_shared(d.name_stack) for d in plain)


# -- "error" -------------------------------------------------------------------------------------

def _in_cond(x, k):
    return lax.cond(x[0] > 0, lambda: x + jax.random.normal(k, (3,)), lambda: x)


def _in_scan(x, k):
    def body(carry, _):
        k1, k2 = jax.random.split(carry)
        return k1, jax.random.uniform(k2)
    _, ys = lax.scan(body, k, None, length=3)
    return x + ys.sum()


def _in_while(x, k):
    def body(state):
        i, acc, kk = state
        return i + 1, acc + jax.random.normal(jax.random.fold_in(kk, i)), kk
    return x + lax.while_loop(lambda s: s[0] < 2, body, (0, 0.0, k))[1]


def _in_remat_and_jit(x, k):
    return jax.checkpoint(jax.jit(noisy))(x, k)


def _keyfan_sampler(x, k):
    return x + kf.normal(k, batch=(3,))


def _keyfan_named(x, k):
    return noisy(x, kf.named(k, "dropout"))


def _through_raw_data(x, k):
    data = jax.random.key_data(k)
    return noisy(x, jax.random.wrap_key_data(data ^ jnp.uint32(1), impl=jax.random.key_impl(k)))


DRAWING = [noisy, _in_cond, _in_scan, _in_while, _in_remat_and_jit, _keyfan_sampler, _keyfan_named,
           _through_raw_data]


@pytest.mark.parametrize("f", DRAWING)
def test_error_raises_on_unmapped_key_and_names_it(f):
    with pytest.raises(kf.SharedRandomnessError, match=r"argument 'k(ey)?' \(position 1\)"):
        kf.vmap(f, in_axes=(0, None))(jnp.ones((4, 3)), kf.key(SEED))


@pytest.mark.bitwise
@pytest.mark.parametrize("f", DRAWING)
def test_error_passes_the_same_functions_with_mapped_keys(f):
    keys = kf.fan_out(kf.key(SEED), 4)
    assert_bitwise_equal(kf.vmap(f)(jnp.ones((4, 3)), keys), jax.vmap(f)(jnp.ones((4, 3)), keys))


def test_error_is_a_value_error_with_location_and_fixes():
    with pytest.raises(ValueError, match=r"test_vmap\.py:\d+ \(noisy\).*randomness='different'.*'same'"):
        kf.vmap(noisy, in_axes=(0, None))(xs_of(2), kf.key(SEED))


def test_error_on_unnamed_raw_key_and_closed_over_key():
    raw = jax.random.PRNGKey(SEED)
    with pytest.raises(kf.SharedRandomnessError, match="key_argnums"):
        kf.vmap(noisy, in_axes=(0, None))(xs_of(2), raw)
    key = kf.key(SEED)
    with pytest.raises(kf.SharedRandomnessError, match="not an argument"):
        kf.vmap(lambda x: noisy(x, key))(xs_of(2))
    with pytest.raises(kf.SharedRandomnessError, match="argument 'seed'"):
        kf.vmap(lambda x, seed: noisy(x, jax.random.key(seed)), in_axes=(0, None))(xs_of(2), 7)


def test_error_nested_outer_key_shared_by_inner_fan_out():
    # The inner map gives its examples different keys, but every OUTER example fans out the same key.
    inner = kf.vmap(lambda x, k: x + jax.random.normal(k), in_axes=(0, None), randomness="different")
    with pytest.raises(kf.SharedRandomnessError):
        kf.vmap(inner, in_axes=(0, None))(jnp.zeros((2, 3)), kf.key(SEED))


@pytest.mark.bitwise
def test_error_passes_functions_without_shared_draws():
    key, keys = kf.key(SEED), kf.fan_out(kf.key(SEED), 4)
    params = {"w": jnp.arange(3.0), "b": jnp.float32(1.0)}

    def pure(x, p, k):
        return x * p["w"] + p["b"]

    got = kf.vmap(pure, in_axes=(0, None, None))(xs_of(4), params, key)
    assert_bitwise_equal(got, jax.vmap(pure, in_axes=(0, None, None))(xs_of(4), params, key))
    # mapped keys; a key derived per example from mapped data; axis_index; an intended shared draw
    kf.vmap(noisy)(xs_of(4), keys)
    kf.vmap(lambda i, k: jax.random.normal(kf.at(k, i)), in_axes=(0, None))(jnp.arange(4), key)
    kf.vmap(lambda x, k: noisy(x, jax.random.fold_in(k, lax.axis_index("b"))), in_axes=(0, None),
            axis_name="b")(xs_of(4), key)

    def declared(x, k):
        with kf.shared_randomness():
            return noisy(x, k)

    got = kf.vmap(declared, in_axes=(0, None))(xs_of(4), key)
    assert_bitwise_equal(got, jax.vmap(declared, in_axes=(0, None))(xs_of(4), key))


def test_error_check_is_traced_once_per_signature():
    traces = []

    def f(x, k):
        traces.append(x.shape)
        return x * 2.0

    mapped = kf.vmap(f, in_axes=(0, None))
    mapped(xs_of(4), kf.key(0))
    first = len(traces)
    assert first == 2, "one check trace and one vmap trace"
    kf.vmap(f, in_axes=(0, None))(xs_of(4), kf.key(1))  # a new wrapper of the same f: cached check
    assert len(traces) == first + 1
    jitted = jax.jit(mapped)
    jitted(xs_of(5), kf.key(0))
    n = len(traces)
    jitted(xs_of(5), kf.key(2))
    assert len(traces) == n, "a jitted call costs no trace"


# -- errors that name the argument --------------------------------------------------------------

def test_wrong_in_axes_are_reported():
    key = kf.key(SEED)
    with pytest.raises(TypeError, match="in_axes must be an int, None, or a tuple"):
        kf.vmap(noisy, in_axes="0")
    with pytest.raises(TypeError, match="in_axes"):
        kf.vmap(noisy, in_axes=(0, True))
    with pytest.raises(ValueError, match="in_axes has 3 entries but the function was called with 2"):
        kf.vmap(noisy, in_axes=(0, None, None))(xs_of(2), key)
    with pytest.raises(ValueError, match=r"maps argument 'x' \(position 0\) over axis 2.*shape \(2, 3\)"):
        kf.vmap(noisy, in_axes=(2, None))(xs_of(2), key)
    with pytest.raises(ValueError, match=r"argument 'x' \(position 0\) has size 2.*argument 'y'.* has size 5"):
        kf.vmap(lambda x, y: x)(xs_of(2), xs_of(5))
    with pytest.raises(ValueError, match="axis_size=4"):
        kf.vmap(lambda x: x, axis_size=4)(xs_of(2))
    with pytest.raises(ValueError, match="no argument is mapped"):
        kf.vmap(lambda x: x, in_axes=None)(xs_of(2))
    with pytest.raises(ValueError, match="not a pytree prefix"):
        kf.vmap(lambda d: d, in_axes=({"a": 0},))({"b": xs_of(2)})
    with pytest.raises(ValueError, match="has no axes"):
        kf.vmap(noisy, in_axes=(0, 0))(xs_of(2), key)


def test_wrong_policy_is_reported():
    with pytest.raises(ValueError, match="randomness must be one of 'different', 'same', 'error'"):
        kf.vmap(noisy, randomness="split")
    with pytest.raises(TypeError, match="randomness"):
        kf.vmap(noisy, randomness=True)
    assert kf.vmap(noisy, in_axes=(0, None), randomness=kf.Randomness.SAME)(xs_of(2), kf.key(0)).shape == (2, 3)


def test_missing_keys_are_reported():
    raw = jax.random.PRNGKey(SEED)
    with pytest.raises(ValueError, match=r"no argument is a key.*key_argnums"):
        kf.vmap(noisy, in_axes=(0, None), randomness="different")(xs_of(2), raw)
    with pytest.raises(ValueError, match=r"key_argnums names positional argument 2.*called with 2"):
        kf.vmap(noisy, in_axes=(0, None), randomness="different", key_argnums=2)(xs_of(2), raw)
    with pytest.raises(TypeError, match="key_argnums"):
        kf.vmap(noisy, key_argnums="key")


def test_keys_of_the_wrong_shape_or_kind_are_reported():
    key = kf.key(SEED)
    with pytest.raises(ValueError, match=r"argument 'key' \(position 1\) is an unmapped array of keys of shape \(3,\)"):
        kf.vmap(noisy, in_axes=(0, None), randomness="different")(xs_of(2), kf.fan_out(key, 3))
    with pytest.raises(TypeError, match=r"argument 'key' \(position 1\) must be a key.*float32"):
        kf.vmap(noisy, in_axes=(0, None), key_argnums=1)(xs_of(2), jnp.zeros(2))
    raw_keys = jax.random.split(jax.random.PRNGKey(0), 2)  # uint32[2, 2]
    with pytest.raises(ValueError, match="raw key array with batch shape"):
        kf.vmap(noisy, in_axes=(0, 1), key_argnums=1)(xs_of(2), raw_keys)
    rbg = jax.random.key(0, impl="rbg")
    with pytest.raises(TypeError, match="'rbg'"):
        kf.vmap(noisy, in_axes=(0, None), randomness="different")(xs_of(2), rbg)
    with pytest.raises(ValueError, match="stream must be one of"):
        kf.vmap(noisy, stream="philox")


def test_keyflow_reports_each_draw_with_its_sources_and_variation():
    def f(i, k_shared, k_other):
        a = jax.random.normal(k_shared)
        b = jax.random.normal(jax.random.fold_in(k_other, i))
        c = lax.scan(lambda carry, _: (carry, jax.random.uniform(jax.random.fold_in(carry, 1))), k_shared,
                     None, length=2)[1]
        return a + b + c.sum()

    closed = jax.make_jaxpr(f)(1, kf.key(0), kf.key(1))
    draws = _keyflow.draws(closed, [True, False, False])
    summary = {(d.sources, 0 in d.levels) for d in draws}
    assert summary == {(frozenset({1}), False), (frozenset({0, 2}), True)}
    assert all("test_vmap.py" in d.location for d in draws)


@pytest.mark.bitwise
def test_closed_over_key_error_suggests_a_fix_that_works():
    key = kf.key(3)

    def closed(x):
        return x + jax.random.normal(key, x.shape)

    with pytest.raises(kf.SharedRandomnessError, match="make the key an argument, then randomness='different'"):
        kf.vmap(closed)(jnp.zeros((4, 3)))
    # The suggested fix: the key as an argument, fanned out.
    fixed = kf.vmap(lambda x, k: x + jax.random.normal(k, x.shape), in_axes=(0, None), randomness="different")
    out = fixed(jnp.zeros((4, 3)), key)
    assert (out[2] == jax.random.normal(kf.at(key, 2), (3,))).all()


def test_unhashable_axis_name_is_a_clear_error():
    with pytest.raises(TypeError, match=r"axis_name must be a hashable name .* got list \['a'\]"):
        kf.vmap(lambda x: x, axis_name=["a"])
