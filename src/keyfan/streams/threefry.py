"""The ``"threefry"`` stream: JAX's partitionable Threefry-2x32, pinned.

This is JAX's default stream since 0.5 (``jax_threefry_partitionable=True``): the key at index
``i`` of a split, and the value at flat position ``j`` of a draw, are each ONE hash of the
64-bit counter ``(hi, lo)``, so neither depends on how many keys or values are made. That makes
fan-out size-independent and every value computable alone.
"""

from __future__ import annotations

import numpy as np
from jax import Array, lax

from keyfan.streams._base import Stream, Words
from keyfan.streams._threefry2x32 import join_uint64, threefry2x32

__all__ = ["ThreefryStream"]


class ThreefryStream(Stream):
    """Partitionable Threefry-2x32 (``jax_threefry_partitionable=True``), bit for bit."""

    name = "threefry"
    size_dependent = False

    def child(self, key: Words, index: Words, size: int | None) -> Words:
        return threefry2x32(key[0], key[1], index[0], index[1])

    def element_bits(self, key: Words, counter: Array | Words, size: int, bit_width: int) -> Array:
        hi, lo = counter if isinstance(counter, tuple) else (np.uint32(0), counter)
        y0, y1 = threefry2x32(key[0], key[1], hi, lo)
        if bit_width == 64:
            return join_uint64(y0, y1)
        bits = y0 ^ y1
        if bit_width == 32:
            return bits
        return lax.convert_element_type(bits, np.dtype(f"uint{bit_width}"))

    def check_jax_draw_size(self, size: int, bit_width: int) -> None:
        if size > 2**64:
            # JAX's partitionable random_bits raises this very error (its counter is 64 bits).
            raise NotImplementedError(
                f"random bits array of size exceeding 2 ** 64: one key draws at most 2**64 values "
                f"on the 'threefry' stream (a 64-bit counter), got {size}."
            )
