"""One key, two uses: reuse (typed and raw), split-then-reuse, fold_in twice, fold_in beside a draw or a split."""

import flax.linen as nn
import jax
import jax.numpy as jnp

import keyfan as kf
from tests.audit_corpus._case import KEY, RAW, X, bug, noisy, ok

STEP = jnp.int32(0)


@bug(X, KEY, in_axes=(0, 0), kinds=("key-reuse",),
     why="Noise and dropout from the same key: the mask is a function of the noise.")
def reuse_typed(x, key):
    keep = jax.random.bernoulli(key, 0.5, x.shape)
    return keep * noisy(x, key)


@bug(X, RAW, in_axes=(0, 0), kinds=("key-reuse",), why="The same with a raw key (invisible to jax_debug_key_reuse).")
def reuse_raw(x, key):
    keep = jax.random.bernoulli(key, 0.5, x.shape)
    return keep * noisy(x, key)


@bug(X, RAW, in_axes=(0, 0), kinds=("key-reuse",),
     why="A raw key and its wrapped typed key are one key: drawing from both is reuse.")
def reuse_raw_and_wrapped(x, key):
    typed = jax.random.wrap_key_data(key)
    return noisy(x, key) + jax.random.uniform(typed, x.shape)


@bug(X, KEY, in_axes=(0, 0), kinds=("key-reuse",), why="Two identical calls on one line draw identical values.")
def reuse_same_call_twice(x, key):
    return noisy(x, key) - noisy(x, key)


_jitted_noise = jax.jit(lambda key, shape: jax.random.normal(key, shape), static_argnums=1)


@bug(X, KEY, in_axes=(0, 0), kinds=("key-reuse",), why="A jitted helper called twice with the same key.")
def reuse_through_jitted_helper(x, key):
    a = _jitted_noise(key, x.shape)
    b = _jitted_noise(key, x.shape)
    return x + a * b


@ok(X, KEY, in_axes=(0, 0), why="The jitted helper called with two different subkeys.")
def jitted_helper_with_subkeys(x, key):
    k1, k2 = jax.random.split(key)
    return x + _jitted_noise(k1, x.shape) * _jitted_noise(k2, x.shape)


@bug(X, KEY, in_axes=(0, 0), kinds=("key-reuse",), why="keyfan's sampler called twice with one key.")
def reuse_keyfan_sampler(x, key):
    return x + kf.normal(key, batch=(), shape=x.shape) * kf.uniform(key, batch=(), shape=x.shape)


@bug(X, KEY, in_axes=(0, 0), kinds=("split-then-reuse",),
     why="The parent key is drawn from after being split: its randomness overlaps the children's.")
def split_then_reuse_parent(x, key):
    sub, _ = jax.random.split(key)
    return noisy(x, sub) + jax.random.uniform(key, x.shape)


@bug(X, KEY, in_axes=(0, 0), kinds=("split-then-reuse",),
     why="Splitting the same key twice yields the same children twice.")
def split_twice(x, key):
    a, _ = jax.random.split(key)
    b, _ = jax.random.split(key)
    return noisy(x, a) * noisy(x, b)


@bug(X, RAW, in_axes=(0, 0), kinds=("split-then-reuse",), why="Split-then-reuse with a raw key.")
def split_then_reuse_raw(x, key):
    keys = jax.random.split(key, 3)
    return noisy(x, keys[0]) + noisy(x, key)


@ok(X, KEY, in_axes=(0, 0), why="The JAX idiom: key, sub = split(key), always moving on to the new key.")
def split_chain(x, key):
    key, sub = jax.random.split(key)
    x = noisy(x, sub)
    key, sub = jax.random.split(key)
    return noisy(x, sub)


@ok(X, KEY, in_axes=(0, 0), why="One split into three keys, each used once (the augment_image recipe).")
def split_three_ways(x, key):
    a, b, c = jax.random.split(key, 3)
    return noisy(x, a) * jax.random.uniform(b) + jax.random.bernoulli(c, 0.5, x.shape)


@bug(X, KEY, in_axes=(0, 0), kinds=("fold-in-twice",), why="fold_in(key, 1) twice gives the same key twice.")
def fold_in_same_constant_twice(x, key):
    return noisy(x, jax.random.fold_in(key, 1)) + jax.random.uniform(jax.random.fold_in(key, 1), x.shape)


@bug(X, RAW, in_axes=(0, 0), kinds=("fold-in-twice",), why="fold_in twice with a raw key.")
def fold_in_same_constant_twice_raw(x, key):
    return noisy(x, jax.random.fold_in(key, 7)) * noisy(x, jax.random.fold_in(key, 7))


@bug(X, KEY, jnp.int32(3), in_axes=(0, 0, None), kinds=("fold-in-twice",),
     why="Folding the same step counter in twice (two layers, one step).")
def fold_in_same_step_twice(x, key, step):
    h = noisy(x, jax.random.fold_in(key, step))
    return noisy(h, jax.random.fold_in(key, step))


@ok(X, KEY, in_axes=(0, 0), why="fold_in with distinct data per use.")
def fold_in_distinct_constants(x, key):
    return noisy(x, jax.random.fold_in(key, 1)) + jax.random.uniform(jax.random.fold_in(key, 2), x.shape)


@ok(X, KEY, in_axes=(0, 0), why="kf.named with distinct names derives independent sub-streams.")
def keyfan_named_distinct(x, key):
    return noisy(x, kf.named(key, "noise")) * jax.random.uniform(kf.named(key, "scale"))


@ok(X, KEY, in_axes=(0, 0),
    why="jax.random.poisson runs two algorithms on one key internally and selects per element: one call.")
def library_reuse_inside_one_call(x, key):
    return x + jax.random.poisson(key, 3.0, x.shape)


@ok(X, KEY, in_axes=(0, 0), why="A gamma draw (random_gamma) from the example's key.")
def gamma_mapped(x, key):
    return x * jax.random.gamma(key, 2.0, x.shape)


@bug(X, KEY, in_axes=(0, None), kinds=("shared-draw",), why="random_gamma from an unmapped key.")
def gamma_unmapped(x, key):
    return x * jax.random.gamma(key, 2.0, x.shape)


@bug(X, KEY, in_axes=(0, 0), kinds=("key-reuse",),
     why="Drawing from a key and from fold_in(key, 0): under the partitionable Threefry the derived "
         "key's data equals the first two words of the parent's bits.")
def draw_then_fold_in_parent(x, key):
    return noisy(x, key) + jax.random.uniform(jax.random.fold_in(key, 0), x.shape)


@bug(X, KEY, in_axes=(0, 0), kinds=("key-reuse",),
     why="fold_in(key, 0) is split(key)[0] under the partitionable Threefry: two draws from one key.")
def fold_in_parent_then_split(x, key):
    folded = jax.random.fold_in(key, 0)
    first, _ = jax.random.split(key)
    return noisy(x, folded) + jax.random.uniform(first, x.shape)


@ok(X, KEY, in_axes=(0, 0),
    why="Many fold_ins of distinct data into one key that is never drawn from or split itself.")
def fold_in_distinct_data_only(x, key):
    return noisy(x, jax.random.fold_in(key, 1)) + jax.random.uniform(jax.random.fold_in(key, 2), x.shape)


@bug(X, STEP, KEY, in_axes=(0, None, 0), kinds=("key-reuse",),
     why="fold_in(key, step) beside split(key): at step 0 or 1 the step key IS one of the children.")
def fold_in_traced_step_and_split(x, step, key):
    step_key = jax.random.fold_in(key, step)
    noise_key, _ = jax.random.split(key)
    return noisy(x, step_key) + noisy(x, noise_key)


@ok(X, KEY, in_axes=(0, 0),
    why="Flax's init folds 32-bit path hashes into the key it is given; splitting that key too "
        "cannot meet them (fold_in(key, d) meets split(key, n) only for d < n).")
def flax_init_then_split_the_same_key(x, key):
    params = nn.Dense(2).init(key, x)
    _, sub = jax.random.split(key)
    return nn.Dense(2).apply(params, noisy(x, sub))


@bug(X, KEY, in_axes=(0, 0), kinds=("key-reuse",),
     why="fold_in(key, 0) equals split(key)[0]; an earlier fold of a large constant must not hide it.")
def small_fold_after_a_large_one_then_split(x, key):
    far = jax.random.fold_in(key, 3213575472)
    near = jax.random.fold_in(key, 0)
    first, _ = jax.random.split(key)
    return noisy(x, far) + noisy(x, near) + jax.random.uniform(first, x.shape)
