"""Keys in scan, fori_loop and while: dropout in a scanned layer stack, carries, iteration 0."""

import jax
import jax.numpy as jnp
from jax import lax

from tests.audit_corpus._case import KEY, RAW, X, bug, ok

LAYERS = jnp.ones((4, 3, 3)) * 0.1


def _layer(w, x, key):
    h = jnp.tanh(x @ w)
    keep = jax.random.bernoulli(key, 0.9, h.shape)
    return keep * h / 0.9


@ok(X, LAYERS, KEY, in_axes=(0, None, 0),
    why="Dropout in a scanned layer stack, splitting the carried key at every layer.")
def scanned_dropout_split_per_layer(x, layers, key):
    def body(carry, w):
        h, k = carry
        k, sub = jax.random.split(k)
        return (_layer(w, h, sub), k), None
    return lax.scan(body, (x, key), layers)[0][0]


@ok(X, LAYERS, KEY, in_axes=(0, None, 0), why="Scanning over one key per layer: split(key, L) as xs.")
def scanned_dropout_keys_as_xs(x, layers, key):
    def body(h, wk):
        w, k = wk
        return _layer(w, h, k), None
    return lax.scan(body, x, (layers, jax.random.split(key, layers.shape[0])))[0]


@bug(X, LAYERS, KEY, in_axes=(0, None, 0), kinds=("loop-reuse",),
     why="The body closes over the example's key: every layer drops the same units.")
def scanned_dropout_closed_over_key(x, layers, key):
    def body(h, w):
        return _layer(w, h, key), None
    return lax.scan(body, x, layers)[0]


@bug(X, LAYERS, KEY, in_axes=(0, None, 0), kinds=("loop-reuse",),
     why="The key is carried but never split: the same mask at every layer.")
def scanned_dropout_key_carried_unchanged(x, layers, key):
    def body(carry, w):
        h, k = carry
        return (_layer(w, h, k), k), None
    return lax.scan(body, (x, key), layers)[0][0]


@bug(X, LAYERS, KEY, in_axes=(0, None, 0), kinds=("loop-reuse",),
     why="The body draws from the key it then carries on: the next layer splits an already-used key.")
def scanned_dropout_carries_used_key(x, layers, key):
    def body(carry, w):
        h, k = carry
        k, _ = jax.random.split(k)
        return (_layer(w, h, k), k), None
    return lax.scan(body, (x, key), layers)[0][0]


@bug(X, LAYERS, KEY, in_axes=(0, None, None), kinds=("shared-draw",),
     why="A correct scanned stack, but the key is not mapped: the whole batch shares each layer's mask.")
def scanned_dropout_unmapped_key(x, layers, key):
    return scanned_dropout_split_per_layer(x, layers, key)


@ok(X, KEY, in_axes=(0, 0), why="fori_loop folding the iteration index into the key.")
def fori_fold_in_index(x, key):
    return lax.fori_loop(0, 3, lambda i, acc: acc + jax.random.normal(jax.random.fold_in(key, i), x.shape), x)


@bug(X, KEY, in_axes=(0, 0), kinds=("loop-reuse",), why="fori_loop drawing from the same key every iteration.")
def fori_same_key(x, key):
    return lax.fori_loop(0, 3, lambda i, acc: acc + jax.random.normal(key, x.shape), x)


@ok(X, RAW, in_axes=(0, 0), why="A while loop with the raw key split every iteration.")
def while_split_carry(x, key):
    def body(state):
        i, acc, k = state
        k, sub = jax.random.split(k)
        return i + 1, acc + jax.random.normal(sub, x.shape), k
    return lax.while_loop(lambda s: s[0] < 3, body, (0, x, key))[1]


@bug(X, RAW, in_axes=(0, 0), kinds=("loop-reuse",), why="A while loop drawing from a loop-invariant key.")
def while_same_key(x, key):
    def body(state):
        i, acc = state
        return i + 1, acc + jax.random.normal(key, x.shape)
    return lax.while_loop(lambda s: s[0] < 3, body, (0, x))[1]


@bug(X, KEY, in_axes=(0, None), kinds=("shared-draw",),
     why="Iteration 0 draws from the initial, unmapped key before mapped data is folded in.")
def scan_draws_before_folding_in_data(x, key):
    def body(k, xi):
        noise = jax.random.normal(k)
        return jax.random.fold_in(k, jnp.int32(xi * 1000)), xi + noise
    return lax.scan(body, key, x)[1]


@ok(X, KEY, in_axes=(0, None),
    why="Folding the mapped data in BEFORE the draw makes every iteration, iteration 0 included, per example.")
def scan_folds_in_data_before_draw(x, key):
    def body(k, xi):
        k, sub = jax.random.split(jax.random.fold_in(k, jnp.int32(xi * 1000)))
        return k, xi + jax.random.normal(sub)
    return lax.scan(body, key, x)[1]
