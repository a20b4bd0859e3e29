"""Declared sharing: kf.shared_randomness() and kf.vmap(randomness="same") are allowed."""

import jax

import keyfan as kf
from tests.audit_corpus._case import KEY, X, noisy, ok


@ok(X, KEY, in_axes=(0, None), allowed=True,
    why="One noise draw for the whole batch, on purpose, declared with kf.shared_randomness().")
def shared_noise_declared(x, key):
    with kf.shared_randomness():
        return noisy(x, key)


@ok(X, KEY, in_axes=(0, None), allowed=True, why="The declared draw behind a jit: the scope is kept.")
def shared_noise_declared_in_jit(x, key):
    with kf.shared_randomness():
        return jax.jit(noisy)(x, key)


@ok(X, KEY, KEY, in_axes=(0, None, 0), allowed=True,
    why="A declared shared draw next to a per-example draw.")
def shared_and_per_example(x, shared_key, key):
    with kf.shared_randomness():
        scale = jax.random.uniform(shared_key)
    return noisy(x, key) * scale


@ok(X, KEY, in_axes=(0, None), allowed=True,
    why="kf.vmap(randomness='same') traces its function inside the shared scope.")
def kf_vmap_same(x, key):
    return kf.vmap(lambda xi, k: noisy(xi, k), in_axes=(None, None), axis_size=2, randomness="same")(x, key)[0]
