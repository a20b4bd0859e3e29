"""Per-key draws under ``vmap``: small draws of many keys as one flat loop.

JAX lowers ``jax.vmap(lambda k: jax.random.bits(k, shape))(keys)`` (and ``split``) by vmapping
the stream's one-key function. For a draw of ``1 < size < 64`` values per key that is slow on
XLA's CPU backend: each key's values are a loop padded to 64 (``keyfan._flat``), so a dropout
mask of 16 units hashes 64 counters; and under ``vmap`` the ``lax.cond`` that keeps the loop
apart becomes a ``select``, so XLA fuses the hash into every consumer and computes it again for
each of them (a per-example gradient reads the mask once per weight).

:func:`per_key` gives the one-key function a ``vmap`` rule (``jax.custom_batching.custom_vmap``)
that draws for all ``R`` keys at once: a flat loop over ``R * size`` values, each reading its
key by ``row = f // size`` and its position ``f % size``, in a loop of its own. Nested ``vmap``s
fold into the one rows axis. Draws of 1 value or of 64 and more per key keep the vmapped
one-key loop, which is already fast. No value changes: element ``(r, j)`` is the stream's
``element_bits`` (or ``child``) of key ``r`` at position ``j``, as in the one-key function.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.custom_batching import custom_vmap

from keyfan._flat import Span, flat_loop

__all__ = ["FLAT_MAX_SIZE", "per_key"]

FLAT_MAX_SIZE = 63
"""Largest per-key draw computed as one flat loop under ``vmap`` (larger draws vectorise as is)."""

_MAX_FLAT = 2**31
"""Most values in one flat loop (its index is a uint32); larger or empty batches keep the vmapped loop."""

ElementFn = Callable[[tuple[Array, Array], Array], Array]
"""``element(key_words, position) -> values``: the values at uint32 ``position`` under ``key_words``."""


def _flat_rows(element: ElementFn, key_rows: Array, size: int) -> Array:
    """``(R, size, ...)``: ``element`` of key ``r`` at position ``j``, over a flat index of ``R * size``."""
    rows = key_rows.shape[0]
    total = rows * size

    def values(span: Span, key_rows: Array) -> Array:
        f = span.index()
        row = jnp.minimum(f // np.uint32(size), np.uint32(rows - 1))
        words = (key_rows[:, 0][row], key_rows[:, 1][row])
        return element(words, f % np.uint32(size))

    out = flat_loop(values, total, key_rows)
    return out.reshape(rows, size, *out.shape[1:])


def per_key(one: Callable[[Array], Array], element: ElementFn, size: int) -> Callable[[Array], Array]:
    """``one(key_data)`` (uint32 ``(2,)`` -> ``(size, ...)``), batched as one flat loop under ``vmap``.

    Args:
      one: the one-key function; it must equal ``element`` at positions ``0..size-1``.
      element: the value at a position under a key (see :data:`ElementFn`).
      size: values per key.

    Returns:
      A function equal to ``one`` that ``vmap`` (at any depth) turns into :func:`_flat_rows` over
        all the keys when ``1 < size <= FLAT_MAX_SIZE``.
    """
    if not 1 < size <= FLAT_MAX_SIZE:
        return one

    @custom_vmap
    def many(key_rows: Array) -> Array:
        if not 0 < key_rows.shape[0] * size <= _MAX_FLAT:
            return jax.vmap(one)(key_rows)
        return _flat_rows(element, key_rows, size)

    @many.def_vmap
    def _many_rule(axis_size: int, in_batched: list[bool], key_rows: Array) -> tuple[Array, bool]:
        if not in_batched[0]:
            return many(key_rows), False
        outer, rows = key_rows.shape[:2]
        out = many(key_rows.reshape(outer * rows, 2))
        return out.reshape(outer, rows, *out.shape[1:]), True

    @custom_vmap
    def single(key_data: Array) -> Array:
        return one(key_data)

    @single.def_vmap
    def _single_rule(axis_size: int, in_batched: list[bool], key_data: Array) -> tuple[Array, bool]:
        if not in_batched[0]:
            return single(key_data), False
        return many(key_data), True

    return single
