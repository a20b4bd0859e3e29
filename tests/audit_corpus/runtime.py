"""Copies made outside the audited function, which only a runtime check can see: each case
returns the batch that keyfan.check_independent must flag (or pass)."""

import jax
import jax.numpy as jnp

import keyfan as kf
from tests.audit_corpus._case import KEY, RAW, bug, noisy, ok

B = 8
XS = jnp.zeros((B, 3))


@bug(runtime=True, kinds=(), why="Keys tiled outside the step: the per-example function is correct, the keys are not.")
def tiled_keys_outside():
    return jnp.tile(RAW, (B, 1))


@bug(runtime=True, kinds=(), why="Noise of a vmap whose key was broadcast with jnp.broadcast_to outside.")
def broadcast_keys_outside_noise():
    return jax.vmap(noisy)(XS, jnp.broadcast_to(KEY, (B,)))


@bug(runtime=True, kinds=(), why="vmap(noisy, in_axes=(0, None)): identical noise rows on zero inputs.")
def broadcast_key_noise_rows():
    return jax.vmap(noisy, in_axes=(0, None))(XS, KEY)


@bug(runtime=True, kinds=(), why="The recipe's flat key grid reused for two chains: rows of the two chains repeat.")
def key_grid_reused_across_chains():
    keys = jax.random.split(KEY, B)
    return jnp.concatenate([keys, keys])


@ok(runtime=True, why="split(key, B): distinct keys.")
def split_keys():
    return jax.random.split(KEY, B)


@ok(runtime=True, why="kf.fan_out over a nested batch: distinct keys everywhere.")
def fan_out_grid():
    return kf.fan_out(KEY, (2, B)).reshape(-1)


@ok(runtime=True, why="Per-example noise from split keys: distinct rows.")
def per_example_noise():
    return jax.vmap(noisy)(XS, jax.random.split(KEY, B))


@ok(runtime=True, why="kf.normal: distinct rows, checked as a pytree with the keys.")
def sampler_rows_and_keys():
    return {"noise": kf.normal(KEY, batch=(B,), shape=(3,)), "keys": kf.fan_out(KEY, B)}
