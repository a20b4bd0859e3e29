"""Known limits: misuse the static audit cannot see. Each is an xfail in the test, with its reason,
and counts against the audit's recall."""

import jax
import jax.numpy as jnp

from tests.audit_corpus._case import KEY, X, bug, noisy

XS = jnp.zeros((4, 3))


@bug(XS, KEY, in_axes=None, kinds=("shared-draw",),
     why="A broadcast key inside a jax.vmap that is part of the audited program.",
     limit="jax.vmap leaves no trace in the jaxpr: vmap draws once from the unmapped key and "
           "broadcasts the result, which looks like any broadcast of a value. Audit the per-example "
           "function with its in_axes, or check the output with keyfan.check_independent.")
def inner_vmap_with_broadcast_key(xs, key):
    return jax.vmap(noisy, in_axes=(0, None))(xs, key)


@bug(X, KEY, in_axes=(0, 0), kinds=("key-reuse",),
     why="Drawing from a key and from fold_in(key, 0): under the partitionable Threefry the derived "
         "key's data equals the first two words of the parent's bits.",
     limit="fold_in does not consume its key, as in JAX's own key-reuse checker: counting it as a use "
           "would flag every draw next to the common fold_in(key, step) derivation.")
def draw_then_fold_in_parent(x, key):
    return noisy(x, key) + jax.random.uniform(jax.random.fold_in(key, 0), x.shape)
