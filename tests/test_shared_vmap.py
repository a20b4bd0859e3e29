"""keyfan.shared_vmap: a one-example linen module lifted over a batch, params shared, RNGs split."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keyfan as kf
from keyfan import recipes
from tests.conftest import assert_bitwise_equal, assert_trees_bitwise_equal

X = jax.random.normal(jax.random.key(5), (6, 4))


class Block(nn.Module):
    """Written for ONE example ``(in_dim,)``."""

    features: int = 8

    @nn.compact
    def __call__(self, x, train: bool = True):
        assert x.ndim == 1, "Block takes one example"
        return nn.Dropout(0.5, deterministic=not train)(nn.Dense(self.features)(x))


def assert_same_mask(actual, expected):
    """The same dropout mask (zeros, bitwise) and the same values up to float32 rounding (a batch's
    matmul and one example's may round differently)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert_bitwise_equal(actual == 0, expected == 0)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.bitwise
def test_equals_a_plain_dense_on_the_batch_with_shared_params():
    layer = kf.shared_vmap(nn.Dense)(features=3)
    variables = layer.init(kf.key(0), X)
    assert jax.tree.map(jnp.shape, variables) == {"params": {"bias": (3,), "kernel": (4, 3)}}
    assert_trees_bitwise_equal(variables, nn.Dense(3).init(kf.key(0), X))
    assert_bitwise_equal(layer.apply(variables, X), nn.Dense(3).apply(variables, X))


@pytest.mark.bitwise
def test_matches_the_reference_recipe():
    seed = 4
    layer = kf.shared_vmap(nn.Dense)(features=3)
    variables = layer.init(jax.random.PRNGKey(seed), X)
    assert_bitwise_equal(layer.apply(variables, X).reshape(-1), recipes.nn_vmap_forward(seed, X, 3))


@pytest.mark.bitwise
def test_each_example_gets_its_own_dropout_key_kf_at_key_i():
    layer = kf.shared_vmap(Block, in_axes=(0, None))(features=8)
    variables = layer.init(kf.key(0), X, False)
    assert variables["params"]["Dense_0"]["kernel"].shape == (4, 8)
    key = kf.key(99)
    out = layer.apply(variables, X, True, rngs={"dropout": key})
    masks = np.asarray(out) == 0
    assert len({row.tobytes() for row in masks}) == X.shape[0], "every example needs its own mask"
    assert 0.25 < masks.mean() < 0.75
    for i in range(X.shape[0]):
        alone = Block(features=8).apply(variables, X[i], True, rngs={"dropout": kf.at(key, i)})
        assert_same_mask(out[i], alone)
    no_dropout = layer.apply(variables, X, False)
    assert not (np.asarray(no_dropout) == 0).any()


def test_an_examples_mask_does_not_depend_on_the_batch_size():
    layer = kf.shared_vmap(Block, in_axes=(0, None))()
    variables = layer.init(kf.key(0), X, False)
    key = kf.key(3)
    full = layer.apply(variables, X, True, rngs={"dropout": key})
    prefix = layer.apply(variables, X[:2], True, rngs={"dropout": key})
    assert_same_mask(prefix, full[:2])


def test_errors():
    with pytest.raises(TypeError, match="Module class"):
        kf.shared_vmap(nn.Dense(3))
    with pytest.raises(TypeError, match="Module class"):
        kf.shared_vmap(lambda x: x)
    with pytest.raises(ValueError, match="must not contain 'params'"):
        kf.shared_vmap(nn.Dense, split_rngs=("params", "dropout"))
    with pytest.raises(TypeError, match="split_rngs"):
        kf.shared_vmap(nn.Dense, split_rngs=(1,))
