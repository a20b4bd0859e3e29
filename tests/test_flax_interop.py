"""Per-example dropout masks inside Flax (linen and NNX), fed from keyfan keys.

Flax's dropout computes ``where(bernoulli(key, 1 - rate), x / (1 - rate), 0)``, the formula of
``keyfan.transforms.dropout``, so wherever the key each example receives is known, the masks are
compared bit for bit with keyfan's.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import keyfan as kf
from keyfan import transforms as T
from tests.conftest import assert_bitwise_equal

RATE = 0.5
N = 6


def inputs():
    return jnp.asarray(np.random.default_rng(0).random((N, 16), dtype=np.float32) + 1.0)


def assert_per_example_masks(y):
    rows = {bytes(np.asarray(r != 0)) for r in y}
    assert len(rows) == N, "each example has its own mask"


class Dropped(nn.Module):
    """One example through a linen dropout layer."""

    @nn.compact
    def __call__(self, x):
        return nn.Dropout(RATE, deterministic=False)(x)


@pytest.mark.bitwise
def test_linen_explicit_keys_through_kf_vmap_equal_keyfan_dropout():
    key, xs = kf.key(11), inputs()

    def one(x, k):
        return nn.Dropout(RATE, deterministic=False).apply({}, x, rng=k)

    y = kf.vmap(one, in_axes=(0, None), randomness="different")(xs, key)
    assert_bitwise_equal(y, T.dropout(key, xs, RATE, batch_axes=1))
    assert_per_example_masks(y)


@pytest.mark.bitwise
def test_linen_nn_vmap_split_rngs_gives_example_i_the_key_at_i():
    # nn.vmap(split_rngs={"dropout": True}) splits the key with jax.random.split: on a kf.key that
    # is kf.fan_out, so example i's stream is kf.at(key, i) and its mask is the unbatched module's.
    key, xs = kf.key(12), inputs()
    batched = nn.vmap(Dropped, in_axes=0, out_axes=0, variable_axes={}, split_rngs={"dropout": True})
    y = batched().apply({}, xs, rngs={"dropout": key})
    for i in range(N):
        assert_bitwise_equal(y[i], Dropped().apply({}, xs[i], rngs={"dropout": kf.at(key, i)}))
    assert_per_example_masks(y)
    assert_bitwise_equal(batched().apply({}, xs, rngs={"dropout": kf.key(12)}), y)  # reproducible


@pytest.mark.bitwise
def test_nnx_split_rngs_and_vmap_derive_keys_keyfan_can_recompute():
    # nnx.Dropout forks its stream (key k0 = fold_in(key, 0)); split_rngs splits the stream's next
    # key fold_in(k0, 0); each example then draws with fold_in(split_i, 0).
    key, xs = kf.key(13), inputs()
    drop = nnx.Dropout(RATE, rngs=nnx.Rngs(dropout=key))

    @nnx.split_rngs(splits=N)
    @nnx.vmap(in_axes=(0, 0))
    def apply(module, x):
        return module(x)

    y = apply(drop, xs)
    k0 = kf.step(key, 0)
    assert_bitwise_equal(jax.random.key_data(drop.rngs.key[...]), jax.random.key_data(k0))
    for i in range(N):
        example_key = kf.step(kf.at(kf.step(k0, 0), i), 0)
        assert_bitwise_equal(y[i], T.dropout(example_key, xs[i], RATE))
    assert_per_example_masks(y)
    again = apply(nnx.Dropout(RATE, rngs=nnx.Rngs(dropout=kf.key(13))), xs)
    assert_bitwise_equal(again, y)


@pytest.mark.bitwise
def test_nnx_explicit_keys_through_kf_vmap_equal_keyfan_dropout():
    key, xs = kf.key(14), inputs()
    drop = nnx.Dropout(RATE)
    y = kf.vmap(lambda x, k: drop(x, rngs=k), in_axes=(0, None), randomness="different")(xs, key)
    assert_bitwise_equal(y, T.dropout(key, xs, RATE, batch_axes=1))
    assert_per_example_masks(y)


def test_flax_dropout_under_error_policy_reports_the_shared_key():
    key, xs = kf.key(15), inputs()
    drop = nnx.Dropout(RATE)
    with pytest.raises(kf.SharedRandomnessError, match=r"argument 'k' \(position 1\)"):
        kf.vmap(lambda x, k: drop(x, rngs=k), in_axes=(0, None))(xs, key)
    same = kf.vmap(lambda x, k: drop(x, rngs=k), in_axes=(0, None), randomness="same")(xs * 0 + 1, key)
    assert len({bytes(np.asarray(r != 0)) for r in same}) == 1, "'same' shares one mask"
