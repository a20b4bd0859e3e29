"""The ``"threefry-legacy"`` stream: the Threefry-2x32 stream of JAX 0.4 and earlier, pinned.

This is ``jax_threefry_partitionable=False``, kept bit for bit to reproduce old results. Its
split and its draws hash the flat counter array ``iota(T)`` in two halves: output word ``w`` of
a ``T``-word block is the first word of ``hash(w, h + w)`` when ``w < h = ceil(T / 2)`` and the
second word of ``hash(w - h, w)`` otherwise (a counter past ``T``, from padding an odd ``T``, is
zero). So every key and value depends on the total size ``T``: fan-out is not size-independent
on this stream, and :func:`keyfan.at` needs the batch size.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from keyfan.streams._base import Stream, Words
from keyfan.streams._threefry2x32 import threefry2x32

__all__ = ["ThreefryLegacyStream"]

_MAX_BLOCK = 2**32 - 1  # JAX 0.4 switches to a block-split layout at this many words


def _block_word(key: Words, w: Array, total: int) -> Array:
    """Word ``w`` (uint32 array) of ``threefry_2x32(key, iota(total))`` in JAX 0.4's layout."""
    half = (total + 1) // 2
    w = jnp.asarray(w)
    first = w < np.uint32(half)
    t = jnp.where(first, w, w - np.uint32(half))
    x1 = t + np.uint32(half)
    if total % 2:
        x1 = jnp.where(x1 < np.uint32(total), x1, np.uint32(0))
    y0, y1 = threefry2x32(key[0], key[1], t, x1)
    return jnp.where(first, y0, y1)


class ThreefryLegacyStream(Stream):
    """Original Threefry-2x32 (``jax_threefry_partitionable=False``), bit for bit."""

    name = "threefry-legacy"
    size_dependent = True

    def child(self, key: Words, index: Words, size: int | None) -> Words:
        if size is None:
            raise ValueError("the 'threefry-legacy' split depends on the number of keys: pass it.")
        lo = jnp.asarray(index[1])
        w = lo + lo
        return _block_word(key, w, 2 * size), _block_word(key, w + np.uint32(1), 2 * size)

    def element_bits(self, key: Words, counter: Array, size: int, bit_width: int) -> Array:
        if bit_width == 32:
            return _block_word(key, counter, size)
        if bit_width == 64:
            # 2 * size words; the high words are the first half, the low words the second half,
            # and both halves of element j come out of the same hash (j, size + j).
            y0, y1 = threefry2x32(key[0], key[1], counter, counter + np.uint32(size))
            hi = lax.convert_element_type(y0, np.uint64)
            lo = lax.convert_element_type(y1, np.uint64)
            return lax.shift_left(hi, np.uint64(32)) | lo
        per_word = 32 // bit_width
        words = -(-size // per_word)
        word = _block_word(key, counter // np.uint32(per_word), words)
        shift = np.uint32(bit_width) * (counter % np.uint32(per_word))
        value = lax.shift_right_logical(word, shift) & np.uint32(2**bit_width - 1)
        return lax.convert_element_type(value, np.dtype(f"uint{bit_width}"))

    def check_draw_size(self, size: int, bit_width: int) -> None:
        words = -(-bit_width * size // 32)
        if words >= _MAX_BLOCK:
            raise ValueError(
                f"the 'threefry-legacy' stream draws at most {_MAX_BLOCK - 1} 32-bit words per key "
                f"in keyfan (JAX 0.4 used a block layout beyond that); got {words} words."
            )
