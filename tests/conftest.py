"""Shared test helpers: fresh keys with their seed in the test id, both streams, the canonical
split + vmap pattern, and bitwise comparison."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import keyfan as kf

pytest_plugins = ["tests._cpu_time"]

STREAMS = ("threefry", "threefry-legacy")
PARTITIONABLE = {"threefry": True, "threefry-legacy": False}


@pytest.fixture(params=STREAMS)
def stream(request):
    """Each stream, with JAX's global flag set to the matching value for canonical comparisons."""
    with jax.threefry_partitionable(PARTITIONABLE[request.param]):
        yield request.param


def canonical(f, keys, batch_ndim: int):
    """The canonical pattern: ``f`` vmapped once per batch axis over ``keys``."""
    for _ in range(batch_ndim):
        f = jax.vmap(f)
    return f(keys)


def canonical_draw(f, key, batch):
    """``vmap^len(batch)(f)(kf.fan_out(key, batch))``, jitted: the reference for every sampler.

    Jitted because eager nested ``vmap`` compiles every primitive separately (seconds per case);
    jit and eager agree bitwise (tested on the samplers themselves)."""
    return jax.jit(lambda keys: canonical(f, keys, len(batch)))(kf.fan_out(key, batch))


def assert_bitwise_equal(actual, expected) -> None:
    """Same shape, same dtype, same bits (NaNs included)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.tobytes() == expected.tobytes(), "arrays differ bitwise"


def key_bits(keys):
    """Raw uint32 data of typed or raw keys, as a NumPy array."""
    if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        keys = jax.random.key_data(keys)
    return np.asarray(keys)


def tree_bits(tree) -> list:
    """Every leaf of a pytree as a NumPy array (typed keys as their raw key data)."""
    return [key_bits(leaf) if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) else np.asarray(leaf)
            for leaf in jax.tree.leaves(tree)]


def assert_trees_bitwise_equal(actual, expected) -> None:
    """Same pytree structure, and every leaf the same shape, dtype and bits."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected), (
        jax.tree.structure(actual), jax.tree.structure(expected))
    for a, e in zip(tree_bits(actual), tree_bits(expected), strict=True):
        assert_bitwise_equal(a, e)


# The compatibility subset (``-m compat``; python3 dev.py test --compat) is marked in one place.
from tests._compat import pytest_collection_modifyitems as pytest_collection_modifyitems  # noqa: E402
