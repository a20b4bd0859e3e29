"""The ``"threefry-legacy"`` stream: the Threefry-2x32 stream of JAX 0.4 and earlier, pinned.

This is ``jax_threefry_partitionable=False``, kept bit for bit to reproduce old results. Its
split and its draws hash the flat counter array ``iota(T)`` in two halves: output word ``w`` of
a ``T``-word block is the first word of ``hash(w, h + w)`` when ``w < h = ceil(T / 2)`` and the
second word of ``hash(w - h, w)`` otherwise (a counter past ``T``, from padding an odd ``T``, is
zero). So every key and value depends on the total size ``T``: fan-out is not size-independent
on this stream, and :func:`keyfan.at` needs the batch size.

Large sizes follow JAX 0.4 too, whatever it does:

* a draw of ``T >= 2**32 - 1`` words switches to JAX's block layout: the key is split into
  ``nblocks + 1`` keys (``nblocks, rem = divmod(T, 2**32 - 1)``), block ``b`` holds words
  ``b * (2**32 - 1) ...`` hashed as a ``2**32 - 1``-word block under key ``b``, and the last key
  hashes the ``rem`` remaining words;
* a split into ``n >= 2**31`` keys hashes ``iota(2n)`` of ``uint32``, which wraps modulo
  ``2**32`` in JAX; keyfan computes the same wrapped counters.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from keyfan.streams._base import Stream, Words, add_words
from keyfan.streams._threefry2x32 import join_uint64, threefry2x32

__all__ = ["ThreefryLegacyStream"]

_MAX_BLOCK = 2**32 - 1  # JAX 0.4 switches to a block-split layout at this many words
_LO = 2**32 - 1


def _block_word(key: Words, w: Array, total: int) -> Array:
    """Word ``w`` (uint32 array) of ``threefry_2x32(key, iota(total))`` in JAX 0.4's layout,
    for ``total < 2**32``."""
    half = (total + 1) // 2
    w = jnp.asarray(w)
    first = w < np.uint32(half)
    t = jnp.where(first, w, w - np.uint32(half))
    x1 = t + np.uint32(half)
    if total % 2:
        x1 = jnp.where(x1 < np.uint32(total), x1, np.uint32(0))
    y0, y1 = threefry2x32(key[0], key[1], t, x1)
    return jnp.where(first, y0, y1)


def _less_than(w: Words, value: int) -> Array:
    """64-bit ``w < value`` on ``(hi, lo)`` words, ``value`` a Python int below ``2**64``."""
    hi, lo = np.uint32(value >> 32), np.uint32(value & _LO)
    return (w[0] < hi) | ((w[0] == hi) & (w[1] < lo))


def _wrapped_word(key: Words, w: Words, total: int) -> Array:
    """Word ``w`` of ``threefry_2x32(key, iota(total))`` for an even ``total >= 2**32``, whose
    ``uint32`` iota wraps modulo ``2**32`` (a legacy split into ``2**31`` keys or more)."""
    half = total // 2
    first = _less_than(w, half)
    x0 = jnp.where(first, w[1], w[1] - np.uint32(half & _LO))
    y0, y1 = threefry2x32(key[0], key[1], x0, x0 + np.uint32(half & _LO))
    return jnp.where(first, y0, y1)


def _divmod_block(w: Words) -> Words:
    """``divmod(w, 2**32 - 1)`` of a 64-bit ``w`` (words), as two uint32 arrays.

    ``w = hi * 2**32 + lo = hi * M + (hi + lo)`` with ``M = 2**32 - 1``, and the 33-bit sum
    ``hi + lo = c * 2**32 + s = c * M + (c + s)`` with ``c + s <= M``.
    """
    hi, lo = w
    s = hi + lo
    c = (s < lo).astype(np.uint32)
    t = s + c
    full = t == np.uint32(_LO)
    return hi + c + full.astype(np.uint32), jnp.where(full, np.uint32(0), t)


class ThreefryLegacyStream(Stream):
    """Original Threefry-2x32 (``jax_threefry_partitionable=False``), bit for bit."""

    name = "threefry-legacy"
    size_dependent = True

    def child(self, key: Words, index: Words, size: int | None) -> Words:
        if size is None:
            raise ValueError("the 'threefry-legacy' split depends on the number of keys: pass it.")
        if 2 * size < 2**32:
            lo = jnp.asarray(index[1])
            w = lo + lo
            return _block_word(key, w, 2 * size), _block_word(key, w + np.uint32(1), 2 * size)
        hi, lo = jnp.asarray(index[0]), jnp.asarray(index[1])
        w = (lax.shift_left(hi, np.uint32(1)) | lax.shift_right_logical(lo, np.uint32(31)),
             lax.shift_left(lo, np.uint32(1)))
        return _wrapped_word(key, w, 2 * size), _wrapped_word(key, (w[0], w[1] | np.uint32(1)), 2 * size)

    def _word(self, key: Words, w: Array | Words, total: int) -> Array:
        """Word ``w`` of JAX 0.4's ``total``-word draw: one block below ``2**32 - 1`` words,
        JAX's block layout from there on."""
        if total < _MAX_BLOCK:
            return _block_word(key, w[1] if isinstance(w, tuple) else w, total)
        if not isinstance(w, tuple):
            w = (jnp.zeros_like(w), w)
        nblocks, rem = divmod(total, _MAX_BLOCK)
        block, within = _divmod_block(w)
        block_key = self.child(key, (jnp.zeros_like(block), block), nblocks + 1)
        full = _block_word(block_key, within, _MAX_BLOCK)
        if not rem:
            return full
        last = _block_word(block_key, within, rem)
        return jnp.where(block < np.uint32(nblocks), full, last)

    def element_bits(self, key: Words, counter: Array | Words, size: int, bit_width: int) -> Array:
        if bit_width == 32:
            return self._word(key, counter, size)
        if bit_width == 64:
            # 2 * size words: the high words are the first half, the low words the second half.
            if 2 * size < _MAX_BLOCK:
                # Both halves of element j come out of the same hash (j, size + j).
                y0, y1 = threefry2x32(key[0], key[1], counter, counter + np.uint32(size))
                return join_uint64(y0, y1)
            j = counter if isinstance(counter, tuple) else (jnp.zeros_like(counter), counter)
            second = add_words(j, (np.uint32(size >> 32), np.uint32(size & _LO)))
            return join_uint64(self._word(key, j, 2 * size), self._word(key, second, 2 * size))
        per_word = 32 // bit_width
        words = -(-size // per_word)
        log = per_word.bit_length() - 1
        if isinstance(counter, tuple):
            hi, lo = counter
            word = (lax.shift_right_logical(hi, np.uint32(log)),
                    lax.shift_right_logical(lo, np.uint32(log)) | lax.shift_left(hi, np.uint32(32 - log)))
            lo_bits = lo
        else:
            word, lo_bits = counter // np.uint32(per_word), counter
        value = self._word(key, word, words)
        shift = np.uint32(bit_width) * (lo_bits % np.uint32(per_word))
        value = lax.shift_right_logical(value, shift) & np.uint32(2**bit_width - 1)
        return lax.convert_element_type(value, np.dtype(f"uint{bit_width}"))

    def check_jax_draw_size(self, size: int, bit_width: int) -> None:
        # JAX 0.4's block layout has no upper limit of its own.
        return None
