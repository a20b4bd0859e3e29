"""Known limits: misuse the static audit cannot see. Each is an xfail in the test, with its reason,
and counts against the audit's recall."""

import jax
import jax.numpy as jnp

from tests.audit_corpus._case import KEY, bug, noisy

XS = jnp.zeros((4, 3))


@bug(XS, KEY, in_axes=None, kinds=("shared-draw",),
     why="A broadcast key inside a jax.vmap that is part of the audited program.",
     limit="jax.vmap leaves no trace in the jaxpr: vmap draws once from the unmapped key and "
           "broadcasts the result, which looks like any broadcast of a value. Audit the per-example "
           "function with its in_axes, or check the output with keyfan.check_independent.")
def inner_vmap_with_broadcast_key(xs, key):
    return jax.vmap(noisy, in_axes=(0, None))(xs, key)
