"""Per-example streams laid out for statistical batteries (``keyfan stream``).

keyfan's promise is that the streams of different examples are independent. A battery such as
NIST SP 800-22 or dieharder reads ONE sequence of bits, so the per-example streams are
interleaved column-wise: word ``j`` of example 0, of example 1, ..., of example ``B - 1``, then
word ``j + 1`` of every example. Consecutive words then come from different examples, and any
dependence between neighbouring examples' streams shows up as dependence between neighbouring
words of the sequence.

Layouts (how example ``i`` of block ``c`` gets its key; ``base = kf.at(kf.named(kf.key(seed),
"stream-block"), c)``):

* ``per-example``: ``kf.at(base, i)``, drawn with ``kf.bits`` (the fused batched path);
* ``example-ids``: ``kf.example_keys(base, ids, step=1)`` for sparse ids ``17 + 1_000_003 * i``;
* ``steps``: ``kf.step(base, i)``, the keys of consecutive training steps;
* ``named``: ``kf.named(base, f"stream-{i}")``;
* ``shared``: ``base`` for every example, the broadcast-key bug: the negative control, which a
  battery must reject (every word appears ``B`` times in a row).

Example ``i``'s words are ``jax.random.bits(key_i, (length,), uint32)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from keyfan._checks import as_int
from keyfan.keys import at, example_keys, named, step
from keyfan.keys import key as make_key
from keyfan.sample import bits

__all__ = ["LAYOUTS", "layout_words", "stream_bytes"]

LAYOUTS = ("per-example", "example-ids", "steps", "named", "shared")
"""The layouts of :func:`layout_words`; ``shared`` is the negative control."""

_ID_STRIDE, _ID_START = 1_000_003, 17


@partial(jax.jit, static_argnames=("length",))
def _bits_of(keys: jax.Array, length: int) -> jax.Array:
    return jax.vmap(lambda k: jax.random.bits(k, (length,), jnp.uint32))(keys)


@partial(jax.jit, static_argnames=("batch",))
def _step_keys(base: jax.Array, batch: int) -> jax.Array:
    return jax.vmap(lambda t: step(base, t))(jnp.arange(batch, dtype=jnp.uint32))


def _check_layout(layout: Any) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
    return layout


def layout_words(layout: str, seed: Any, batch: Any, length: Any, *, block: Any = 0) -> np.ndarray:
    """The ``(batch, length)`` uint32 words of one block: row ``i`` is example ``i``'s stream.

    Args:
      layout: one of :data:`LAYOUTS`.
      seed: the integer seed of ``kf.key``.
      batch: the number of examples ``B`` (>= 2).
      length: words per example ``L`` (>= 1).
      block: the block index ``c`` (each block has its own base key).

    Returns:
      A NumPy ``uint32`` array ``(B, L)``.
    """
    layout = _check_layout(layout)
    batch = as_int("batch", batch, lo=2, hi=2**20 + 1)
    length = as_int("length", length, lo=1, hi=2**24 + 1)
    block = as_int("block", block, lo=0, hi=2**64)
    base = at(named(make_key(seed), "stream-block"), block)
    if layout == "per-example":
        words = bits(base, batch=(batch,), shape=(length,))
    elif layout == "example-ids":
        ids = np.uint64(_ID_START) + np.uint64(_ID_STRIDE) * np.arange(batch, dtype=np.uint64)
        words = _bits_of(example_keys(base, ids, step=1), length)
    elif layout == "steps":
        words = _bits_of(_step_keys(base, batch), length)
    elif layout == "named":
        words = _bits_of(jnp.stack([named(base, f"stream-{i}") for i in range(batch)]), length)
    else:
        words = jnp.broadcast_to(jax.random.bits(base, (length,), jnp.uint32), (batch, length))
    return np.asarray(words, dtype=np.uint32)


def stream_bytes(layout: str, seed: Any, batch: Any, length: Any, n_bytes: Any = None) -> Iterator[bytes]:
    """Chunks of the column-wise byte stream: little-endian uint32 words, word ``j`` of every
    example, then word ``j + 1``; block after block until ``n_bytes`` (default: one block of
    ``4 * batch * length`` bytes; ``0``: without end)."""
    batch = as_int("batch", batch, lo=2, hi=2**20 + 1)
    length = as_int("length", length, lo=1, hi=2**24 + 1)
    block_bytes = 4 * batch * length
    remaining = block_bytes if n_bytes is None else as_int("bytes", n_bytes, lo=0)
    endless = remaining == 0
    c = 0
    while endless or remaining > 0:
        words = layout_words(layout, seed, batch, length, block=c)
        chunk = np.ascontiguousarray(words.T).astype("<u4").tobytes()
        if not endless:
            chunk = chunk[:remaining]
            remaining -= len(chunk)
        yield chunk
        c += 1
