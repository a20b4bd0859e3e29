"""The Threefry-2x32 block function (20 rounds), in plain ``jax.numpy`` uint32 arithmetic.

This is the hash under every keyfan stream. It is written out round by round with Python-int
rotation constants, so XLA sees fixed rotations (one ``vprold`` per rotation on AVX-512) and a
single fusion, rather than JAX's CPU lowering of a rolled five-iteration loop whose rotation
amounts live in a carried array. The function is pure elementwise arithmetic on broadcastable
arrays, so it runs unchanged on CPU, GPU and TPU, under ``jit``, ``vmap`` and sharding, and its
result does not depend on ``jax_enable_x64`` or ``jax_threefry_partitionable``.

Reference: J. K. Salmon, M. A. Moraes, R. O. Dror, D. E. Shaw, "Parallel random numbers: as easy
as 1, 2, 3", SC 2011.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

__all__ = ["HASH_SCOPE", "join_uint64", "threefry2x32"]

HASH_SCOPE = "keyfan_threefry2x32"
"""Name scope around every hash, so a jaxpr analysis (``keyfan._keyflow``) can tell keyfan's
inlined Threefry from other uint32 arithmetic. Metadata only: it changes no value and no
compiled code."""

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: Array, r: int) -> Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(k0: Array, k1: Array, x0: Array, x1: Array) -> tuple[Array, Array]:
    """Hashes the counter words ``(x0, x1)`` under the key words ``(k0, k1)``.

    Args:
      k0, k1: uint32 arrays, the two key words; broadcastable against the counters.
      x0, x1: uint32 arrays, the two counter words (``x0`` is the high word of a 64-bit counter
        in JAX's partitionable layout).

    Returns:
      The two uint32 output words, with the broadcast shape of all four inputs. Bitwise equal
        to JAX's own ``threefry2x32`` primitive on the same words.
    """
    with jax.named_scope(HASH_SCOPE):
        k2 = k0 ^ k1 ^ _PARITY
        ks = (k0, k1, k2)
        x0 = x0 + k0
        x1 = x1 + k1
        for block in range(5):
            for r in _ROTATIONS[block % 2]:
                x0 = x0 + x1
                x1 = _rotate_left(x1, r)
                x1 = x0 ^ x1
            x0 = x0 + ks[(block + 1) % 3]
            x1 = x1 + ks[(block + 2) % 3] + np.uint32(block + 1)
        return x0, x1


def join_uint64(hi: Array, lo: Array) -> Array:
    """``(hi << 32) | lo`` as uint64, from two uint32 arrays.

    The shift amount is a uint64 array, not a NumPy scalar: under
    ``jax_explicit_x64_dtypes="allow"`` without x64, ``np.uint64(32)`` is narrowed to uint32 and
    ``lax.shift_left`` refuses the mix (JAX writes ``jnp.asarray(32, dtype)`` for the same reason).
    """
    hi = lax.convert_element_type(hi, np.uint64)
    lo = lax.convert_element_type(lo, np.uint64)
    return lax.shift_left(hi, jnp.asarray(32, dtype=hi.dtype)) | lo
