"""Copies of one key inside the audited program: tile, broadcast_to, repeat, stack."""

import jax
import jax.numpy as jnp

import keyfan as kf
from tests.audit_corpus._case import KEY, RAW, bug, noisy, ok

XS = jnp.zeros((4, 3))


@bug(XS, RAW, in_axes=None, kinds=("broadcast-key",),
     why="jnp.tile(key, (B, 1)) makes B copies of one raw key: every example draws the same noise.")
def tiled_raw_keys(xs, key):
    return jax.vmap(noisy)(xs, jnp.tile(key, (xs.shape[0], 1)))


@bug(XS, KEY, in_axes=None, kinds=("broadcast-key",), why="jnp.broadcast_to(key, (B,)) of a typed key.")
def broadcast_typed_keys(xs, key):
    return jax.vmap(noisy)(xs, jnp.broadcast_to(key, (xs.shape[0],)))


@bug(XS, KEY, in_axes=None, kinds=("broadcast-key",), why="jnp.repeat of one key.")
def repeated_keys(xs, key):
    return jax.vmap(noisy)(xs, jnp.repeat(key[None], xs.shape[0]))


@bug(XS, KEY, in_axes=None, kinds=("broadcast-key",), why="A list of the same key, stacked.")
def stacked_same_key(xs, key):
    return jax.vmap(noisy)(xs, jnp.stack([key] * xs.shape[0]))


@ok(XS, KEY, in_axes=None, why="model_step's pattern: split(key, B), then vmap.")
def split_then_vmap(xs, key):
    return jax.vmap(noisy)(xs, jax.random.split(key, xs.shape[0]))


@ok(XS, KEY, in_axes=None, why="kf.fan_out(key, B), then vmap.")
def fan_out_then_vmap(xs, key):
    return jax.vmap(noisy)(xs, kf.fan_out(key, xs.shape[0]))


@ok(XS, KEY, in_axes=None, why="kf.vmap(randomness='different') fans the key out itself.")
def kf_vmap_different(xs, key):
    return kf.vmap(noisy, in_axes=(0, None), randomness="different")(xs, key)


@ok(XS, KEY, in_axes=None, why="Broadcasting a key and folding in a distinct index per row is correct.")
def broadcast_then_fold_in_rows(xs, key):
    keys = jax.vmap(jax.random.fold_in)(jnp.broadcast_to(key, (xs.shape[0],)), jnp.arange(xs.shape[0]))
    return jax.vmap(noisy)(xs, keys)
