"""Draws behind transformations: jit, remat, custom_jvp, custom_vjp, cond, grad, Flax."""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

import keyfan as kf
from tests.audit_corpus._case import KEY, X, bug, noisy, ok


@jax.custom_jvp
def _noisy_jvp(x, key):
    return noisy(x, key)


_noisy_jvp.defjvp(lambda primals, tangents: (_noisy_jvp(*primals), tangents[0]))


@jax.custom_vjp
def _noisy_vjp(x, key):
    return noisy(x, key)


_noisy_vjp.defvjp(lambda x, key: (_noisy_vjp(x, key), None), lambda _, g: (g, None))


@bug(X, KEY, in_axes=(0, None), kinds=("shared-draw",), why="A draw inside a custom_jvp function, key unmapped.")
def custom_jvp_unmapped(x, key):
    return _noisy_jvp(x, key)


@ok(X, KEY, in_axes=(0, 0), why="The same, key mapped.")
def custom_jvp_mapped(x, key):
    return _noisy_jvp(x, key)


@bug(X, KEY, in_axes=(0, None), kinds=("shared-draw",), why="A draw inside a custom_vjp function, key unmapped.")
def custom_vjp_unmapped(x, key):
    return _noisy_vjp(x, key)


@ok(X, KEY, in_axes=(0, 0), why="The same under jax.grad, key mapped.")
def custom_vjp_under_grad_mapped(x, key):
    return jax.grad(lambda x: _noisy_vjp(x, key).sum())(x)


@bug(X, KEY, in_axes=(0, None), kinds=("shared-draw",), why="A draw inside jax.checkpoint (remat), key unmapped.")
def remat_unmapped(x, key):
    return jax.checkpoint(noisy)(x, key)


@ok(X, KEY, in_axes=(0, 0), why="remat around jit, key mapped.")
def remat_jit_mapped(x, key):
    return jax.checkpoint(jax.jit(noisy))(x, key)


@bug(X, KEY, in_axes=(0, None), kinds=("shared-draw",),
     why="cond with a mapped predicate selects per example, but the draw inside is still shared.")
def cond_unmapped_key(x, key):
    return lax.cond(x[0] > 0, lambda: noisy(x, key), lambda: x)


@ok(X, KEY, in_axes=(0, 0), why="Both branches draw from the example's key: only one branch runs.")
def cond_both_branches_draw(x, key):
    return lax.cond(x[0] > 0, lambda: noisy(x, key), lambda: x * jax.random.uniform(key, x.shape))


@ok(X, jnp.int32(1), KEY, in_axes=(0, 0, 0), why="lax.switch over three augmentations, each from the key.")
def switch_branches(x, i, key):
    return lax.switch(i, [lambda: noisy(x, key), lambda: -x, lambda: x * jax.random.uniform(key)])


def _dropout(x, key):
    return nn.Dropout(0.5, deterministic=False).apply({}, x, rng=key)


@bug(X, KEY, in_axes=(0, None), kinds=("shared-draw",), why="Flax linen Dropout with one rng for the batch.")
def flax_dropout_unmapped(x, key):
    return _dropout(x, key)


@ok(X, KEY, in_axes=(0, 0), why="Flax linen Dropout with a per-example rng.")
def flax_dropout_mapped(x, key):
    return _dropout(x, key)


@ok(X, KEY, in_axes=(0, 0), why="keyfan's per-example dropout transform.")
def keyfan_dropout_mapped(x, key):
    return kf.transforms.dropout(key, x, 0.5)


@bug(X, KEY, in_axes=(0, None), kinds=("shared-draw",), why="keyfan's dropout transform with an unmapped key.")
def keyfan_dropout_unmapped(x, key):
    return kf.transforms.dropout(key, x, 0.5)
