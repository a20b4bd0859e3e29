"""Small per-key draws under vmap (keyfan.streams._per_key): the flat loop gives the one-key bits."""

import contextlib
from collections.abc import Iterator
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keyfan as kf
from keyfan.streams import _per_key

STREAMS = ["threefry", "threefry-legacy"]


def _keys(stream: str, shape: tuple[int, ...]) -> jax.Array:
    """Distinct keys of the stream, shaped ``shape`` (built by folding in, valid on both streams)."""
    base = kf.key(7, stream=stream)
    flat = [jax.random.fold_in(base, i) for i in range(int(np.prod(shape)))]
    return jnp.stack(flat).reshape(shape)


@contextlib.contextmanager
def _flat_rule_calls() -> Iterator[mock.MagicMock]:
    """Records the calls of the flat per-key rule while the block traces and compiles.

    The rule runs when JAX traces and lowers a vmapped draw. JAX reuses the trace and lowering of
    an equal computation made earlier in the process (its caches are keyed by the jaxpr, not by
    the function being jitted): after another test jitted the same draw, no rule runs at all. So
    the block starts from empty caches, whatever ran before it in the process.
    """
    jax.clear_caches()
    with mock.patch.object(_per_key, "_flat_rows", wraps=_per_key._flat_rows) as flat:
        yield flat


def _one_by_one(f, keys: jax.Array) -> np.ndarray:
    """``f`` applied to each key alone (no vmap), stacked in the keys' shape."""
    flat = keys.reshape(-1)
    return np.stack([np.asarray(f(flat[i])) for i in range(flat.shape[0])]).reshape(*keys.shape, *f(flat[0]).shape)


def _bits_cases():
    """Every size and width on ``"threefry"``; on the legacy stream the smallest and largest flat
    sizes in the default tier, the others (the same flat loop) in the slow tier."""
    for stream in STREAMS:
        for size in (2, 3, 10, 16, 63):
            slow = stream != "threefry" and size not in (3, 63)
            yield pytest.param(stream, size, marks=[pytest.mark.slow] if slow else [], id=f"{size}-{stream}")


@pytest.mark.bitwise
@pytest.mark.parametrize(("stream", "size"), list(_bits_cases()))
@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.uint16, jnp.uint32])
def test_vmapped_bits_equal_one_key_bits(stream, size, dtype):
    keys = _keys(stream, (5,))

    def draw(k):
        return jax.random.bits(k, (size,), dtype)

    with _flat_rule_calls() as flat:
        batched = jax.jit(jax.vmap(draw))(keys)
    assert flat.called, "the flat per-key rule was not used"
    np.testing.assert_array_equal(np.asarray(batched), _one_by_one(draw, keys))


@pytest.mark.bitwise
@pytest.mark.parametrize("stream", STREAMS)
def test_vmapped_64_bit_draws_and_shapes(stream):
    keys = _keys(stream, (4,))
    with jax.enable_x64(True):
        def draw(k):
            return jax.random.bits(k, (3, 5), jnp.uint64)

        np.testing.assert_array_equal(np.asarray(jax.vmap(draw)(keys)), _one_by_one(draw, keys))


@pytest.mark.bitwise
@pytest.mark.parametrize("stream", STREAMS)
def test_nested_vmap_folds_into_one_rows_axis(stream):
    keys = _keys(stream, (3, 4))

    def draw(k):
        return jax.random.uniform(k, (7,))

    with _flat_rule_calls() as flat:
        nested = jax.jit(jax.vmap(jax.vmap(draw)))(keys)
    assert flat.call_args.args[1].shape == (12, 2), "nested vmaps should draw all 12 keys in one loop"
    np.testing.assert_array_equal(np.asarray(nested), _one_by_one(draw, keys))


@pytest.mark.bitwise
@pytest.mark.parametrize("stream", ["threefry"])
@pytest.mark.parametrize("num", [2, 3, 7])
def test_vmapped_split_equals_one_key_split(stream, num):
    keys = _keys(stream, (6,))

    def split(k):
        return jax.random.key_data(jax.random.split(k, num))

    np.testing.assert_array_equal(np.asarray(jax.jit(jax.vmap(split))(keys)), _one_by_one(split, keys))


@pytest.mark.bitwise
def test_legacy_vmapped_split_equals_one_key_split():
    keys = _keys("threefry-legacy", (5,))

    def split(k):
        return jax.random.key_data(jax.random.split(k, 3))

    np.testing.assert_array_equal(np.asarray(jax.vmap(split)(keys)), _one_by_one(split, keys))


def test_vmap_over_no_keys():
    keys = _keys("threefry", (1,))[:0]
    out = jax.vmap(lambda k: jax.random.bits(k, (5,)))(keys)
    assert out.shape == (0, 5)


@pytest.mark.bitwise
def test_vmap_over_data_only_leaves_the_key_draw_alone():
    """A key that is not mapped (in_axes=None) still draws once, through the one-key loop."""
    key = kf.key(3)
    out = jax.vmap(lambda x, k: x + jax.random.uniform(k, (4,)), in_axes=(0, None))(jnp.zeros((3, 4)), key)
    np.testing.assert_array_equal(np.asarray(out), np.broadcast_to(np.asarray(jax.random.uniform(key, (4,))), (3, 4)))


@pytest.mark.bitwise
def test_per_example_dropout_under_grad_equals_one_example_at_a_time():
    """The training pattern: per-example dropout masks inside value_and_grad of a vmapped loss."""
    keys = kf.fan_out(kf.key(0), (8,))
    w = jnp.linspace(-1.0, 1.0, 16)
    xs = jnp.arange(8 * 16, dtype=jnp.float32).reshape(8, 16) / 100

    def loss(w, x, k):
        keep = jax.random.bernoulli(k, 0.9, (16,))
        return jnp.sum(jnp.where(keep, x * w / 0.9, 0.0) ** 2), keep

    step = jax.value_and_grad(loss, has_aux=True)
    (values, masks), grads = jax.jit(jax.vmap(step, in_axes=(None, 0, 0)))(w, xs, keys)
    assert len({tuple(np.asarray(m)) for m in masks}) == 8, "examples should get different masks"
    for i in range(8):
        (value, mask), grad = jax.jit(step)(w, xs[i], keys[i])
        np.testing.assert_array_equal(np.asarray(masks[i]), np.asarray(mask))
        np.testing.assert_array_equal(np.asarray(grads[i]), np.asarray(grad))  # elementwise: exact
        np.testing.assert_allclose(np.asarray(values[i]), np.asarray(value), rtol=1e-6)  # a sum: rounding


def test_large_draws_keep_the_vmapped_one_key_loop():
    assert _per_key.per_key(abs, abs, 64) is abs
    assert _per_key.per_key(abs, abs, 1) is abs
