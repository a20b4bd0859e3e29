"""Which keys are mapped: the broadcast key, forgotten in_axes, splitting inside the mapped
function, nested vmaps, axis_index, per-example ids, keyfan's keys and samplers."""

import flax.linen as nn
import jax
import jax.numpy as jnp

import keyfan as kf
from tests.audit_corpus._case import KEY, RAW, X, bug, noisy, ok

PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
ID = jnp.int32(0)


# -- the broadcast key ---------------------------------------------------------------------------

@bug(X, KEY, in_axes=(0, None), kinds=("shared-draw",),
     why="vmap(noisy, in_axes=(0, None))(xs, key): vmap draws once and broadcasts: every example gets the same noise.")
def broadcast_key_typed(x, key):
    return noisy(x, key)


@bug(X, RAW, in_axes=(0, None), kinds=("shared-draw",),
     why="The same bug with a raw uint32[2] key, which JAX's key-reuse checker does not track.")
def broadcast_key_raw(x, key):
    return noisy(x, key)


@ok(X, KEY, in_axes=(0, 0), why="One key per example (split(key, B) mapped over axis 0).")
def mapped_key_typed(x, key):
    return noisy(x, key)


@ok(X, RAW, in_axes=(0, 0), why="One raw key per example.")
def mapped_key_raw(x, key):
    return noisy(x, key)


@ok(X, KEY, in_axes=0, why="in_axes=0 maps every argument, the key included.")
def default_in_axes_maps_the_key(x, key):
    return noisy(x, key)


# -- forgetting in_axes --------------------------------------------------------------------------

@bug(PARAMS, X, KEY, in_axes=(None, 0, None), kinds=("shared-draw",),
     why="in_axes copied from a params-only spec leaves the key unmapped: one dropout mask for the batch.")
def forgot_to_map_the_key(params, x, key):
    keep = jax.random.bernoulli(key, 0.5, x.shape)
    return (keep * x / 0.5) @ params["w"] + params["b"]


@ok(PARAMS, X, KEY, in_axes=(None, 0, 0), why="forward_single's natural in_axes: shared params, per-example x and key.")
def params_shared_key_mapped(params, x, key):
    keep = jax.random.bernoulli(key, 0.5, x.shape)
    return (keep * x / 0.5) @ params["w"] + params["b"]


@bug(KEY, X, in_axes=(None, 0), kinds=("shared-draw",),
     why="vmap(model.init, in_axes=(None, 0)) swaps the recipe's in_axes=(0, None): every init is the same.")
def batched_init_swapped_in_axes(key, x):
    return nn.Dense(4).init(key, x)


@ok(KEY, X, in_axes=(0, None), why="The recipe: vmap(model.init, in_axes=(0, None)) gives independent inits.")
def batched_init(key, x):
    return nn.Dense(4).init(key, x)


# -- splitting inside the mapped function --------------------------------------------------------

@bug(X, KEY, in_axes=(0, None), kinds=("shared-draw",),
     why="Splitting an UNMAPPED key inside the mapped function gives every example the same children.")
def split_unmapped_key_inside(x, key):
    noise_key, _ = jax.random.split(key)
    return noisy(x, noise_key)


@bug(X, KEY, in_axes=(0, None), kinds=("shared-draw",),
     why="split(key, B) inside, then a fixed child: all examples take child 0.")
def split_batch_inside_fixed_child(x, key):
    return noisy(x, jax.random.split(key, 8)[0])


@ok(X, KEY, in_axes=(0, 0),
    why="Splitting the example's OWN key inside is correct (forward_single, model_step): the children are per example.")
def split_mapped_key_inside(x, key):
    noise_key, drop_key = jax.random.split(key)
    keep = jax.random.bernoulli(drop_key, 0.5, x.shape)
    return keep * noisy(x, noise_key)


@ok(X, ID, KEY, in_axes=(0, 0, None),
    why="split(key, N)[i] with a mapped index i: each example takes its own child (wasteful, but correct).")
def split_batch_inside_indexed_by_mapped_id(x, i, key):
    return noisy(x, jax.random.split(key, 8)[i])


# -- per-example ids and axis_index --------------------------------------------------------------

@ok(X, KEY, in_axes=(0, None), axis_name="batch",
    why="fold_in(key, axis_index('batch')) derives a per-example key from a shared one.")
def fold_in_axis_index(x, key):
    return noisy(x, jax.random.fold_in(key, jax.lax.axis_index("batch")))


@ok(X, ID, KEY, in_axes=(0, 0, None), why="fold_in(key, example_id) with mapped ids.")
def fold_in_example_id(x, i, key):
    return noisy(x, jax.random.fold_in(key, i))


@ok(X, ID, KEY, in_axes=(0, 0, None), why="kf.at(key, i): the key of coordinate i, per example.")
def keyfan_at_mapped_index(x, i, key):
    return noisy(x, kf.at(key, i))


@ok(X, ID, KEY, in_axes=(0, 0, None), why="kf.example_keys from a stable per-example id.")
def keyfan_example_keys(x, i, key):
    return noisy(x, kf.example_keys(key, i, step=3))


@bug(X, KEY, in_axes=(0, None), kinds=("shared-draw",), why="kf.named derives the same sub-stream for everyone.")
def keyfan_named_unmapped(x, key):
    return noisy(x, kf.named(key, "dropout"))


@bug(X, KEY, in_axes=(0, None), kinds=("shared-draw",), why="keyfan's sampler from an unmapped key.")
def keyfan_sampler_unmapped(x, key):
    return x + kf.normal(key, batch=(), shape=x.shape)


@ok(X, KEY, in_axes=(0, 0), why="keyfan's sampler from the example's key.")
def keyfan_sampler_mapped(x, key):
    return x + kf.normal(key, batch=(), shape=x.shape)


@bug(jnp.int32(7), X, in_axes=(None, 0), kinds=("shared-draw",),
     why="A key made from an unmapped seed argument inside the function is shared.")
def key_from_unmapped_seed(seed, x):
    return noisy(x, jax.random.key(seed))


@ok(jnp.int32(7), X, in_axes=(0, 0), why="A key made from a per-example seed.")
def key_from_mapped_seed(seed, x):
    return noisy(x, jax.random.key(seed))


# -- nested vmaps --------------------------------------------------------------------------------

@ok(X, KEY, in_axes=[(0, 0), (0, 0)], why="The recipe's key grid: a key for every (chain, example).")
def nested_both_levels_mapped(x, key):
    return noisy(x, key)


@bug(X, KEY, in_axes=[(0, 0), (0, None)], kinds=("shared-draw",),
     why="One key per chain, broadcast over the inner batch: examples of a chain share noise.")
def nested_inner_level_unmapped(x, key):
    return noisy(x, key)


@bug(X, KEY, in_axes=[(0, None), (0, 0)], kinds=("shared-draw",),
     why="Per-example keys reused by every chain: the chains are copies of each other.")
def nested_outer_level_unmapped(x, key):
    return noisy(x, key)


@ok(X, KEY, in_axes=[(0, None), (0, None)], axis_name=["chain", "batch"],
    why="fold_in of both axis indices gives every (chain, example) its own key.")
def nested_fold_in_both_axis_indices(x, key):
    key = jax.random.fold_in(jax.random.fold_in(key, jax.lax.axis_index("chain")), jax.lax.axis_index("batch"))
    return noisy(x, key)


@bug(X, KEY, in_axes=[(0, None), (0, None)], axis_name=["chain", "batch"], kinds=("shared-draw",),
     why="Folding in only the inner axis index: every chain repeats the same per-example noise.")
def nested_fold_in_inner_axis_only(x, key):
    return noisy(x, jax.random.fold_in(key, jax.lax.axis_index("batch")))


@ok(X, ID, ID, KEY, in_axes=[(0, 0, None, None), (0, None, 0, None)],
    why="kf.at(key, (i, j)) with the chain index mapped outside and the example index inside.")
def nested_keyfan_at_two_indices(x, i, j, key):
    return noisy(x, kf.at(key, (i, j)))
