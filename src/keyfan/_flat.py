"""Flat loops that stay fast on XLA's CPU backend: padded to a multiple of 64, run in a branch
of their own, then cut and reshaped.

Two measured cliffs motivate this (jax 0.10.2, CPU):

* A flat elementwise loop of Threefry over a size that is not a multiple of the vector width ran
  about 10x slower: ``normal`` of ``N = 999_999`` took 37 ms against 3.5 ms for ``10**6`` (JAX's own
  ``split`` and ``normal`` show it too: 27.5 vs 4.0 ms). Short odd loops also made LLVM unroll a
  scalar remainder, and compiles took seconds. Computing ``padded(size)`` elements and dropping
  the extra ones fixes both.
* XLA fuses what follows (the cut back to ``size``, the reshape to ``(N, n)``) into the loop and
  then drives the whole loop over the result's shape: an odd size again, or a small trailing
  axis that does not vectorise (8x slower for ``(10**6, 3)``). Producing the flat result inside a
  ``lax.cond`` whose predicate is always true, but not a compile-time constant, keeps it a loop of
  its own.

Neither changes a value. Under ``vmap`` with a batched predicate the ``cond`` becomes a select
over both branches: still correct, only the loop is no longer kept apart.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

__all__ = ["padded", "pad", "unfused", "flat_loop"]

LANES = 64


def padded(size: int) -> int:
    """``size`` rounded up to a multiple of :data:`LANES`."""
    return -(-size // LANES) * LANES


def pad(x: Array, size: int) -> Array:
    """A 1-D ``x`` extended to ``size`` by repeating its last value."""
    return x if x.shape[0] == size else jnp.pad(x, (0, size - x.shape[0]), mode="edge")


def unfused(fn: Callable[..., Array], first: Array, *operands: Array) -> Array:
    """``fn(first, *operands)`` in a branch of its own; ``first`` is a uint32 array (a key)."""
    out = jax.eval_shape(fn, first, *operands)
    always = (jnp.ravel(first)[0] | np.uint32(1)) != np.uint32(0)
    return lax.cond(always, fn, lambda *_: jnp.zeros(out.shape, out.dtype), first, *operands)


def flat_loop(fn: Callable[..., Array], size: int, first: Array, *operands: Array) -> Array:
    """``fn(first, *operands)`` computes ``padded(size)`` values along its leading axis; returns
    the first ``size`` of them, computed as a loop of its own."""
    out = unfused(fn, first, *operands)
    return out if out.shape[0] == size else out[:size]
