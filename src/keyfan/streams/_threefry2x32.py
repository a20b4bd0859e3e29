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

from collections.abc import Callable

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = ["HASH_SCOPE", "Hash", "threefry2x32", "threefry2x32_primitive"]

Hash = Callable[[Array, Array, Array, Array], tuple[Array, Array]]
"""``hash(k0, k1, x0, x1) -> (y0, y1)`` on broadcastable uint32 arrays."""

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
      to ``jax.extend.random.threefry2x32_p`` on the same words.
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


def threefry2x32_primitive(k0: Array, k1: Array, x0: Array, x1: Array) -> tuple[Array, Array]:
    """The same hash through JAX's own ``threefry2x32`` primitive (same bits as
    :func:`threefry2x32`).

    Used where keys and draws leave keyfan's fused samplers: in the streams' JAX PRNG functions
    (``jax.random.*`` on a keyfan key) and in key derivation (``fan_out``, ``at``, ...). The
    primitive is one opaque operation for XLA, computed once, whereas the elementwise
    :func:`threefry2x32` may be fused, and so recomputed, into every consumer of its result
    (every use of a dropout mask inside a gradient). Inputs broadcast as for
    :func:`threefry2x32`.
    """
    with jax.named_scope(HASH_SCOPE):
        words = jnp.broadcast_arrays(*(jnp.asarray(w, np.uint32) for w in (k0, k1, x0, x1)))
        # JAX's CPU lowering needs both key words, and both counter words, to have one shape.
        # Stacking each pair keeps that under vmap, where one word of a pair may be batched and
        # the other not (a constant high word beside a per-example low word, say).
        keys, counters = jnp.stack(words[:2]), jnp.stack(words[2:])
        y0, y1 = jax.extend.random.threefry2x32_p.bind(keys[0], keys[1], counters[0], counters[1])
    return y0, y1
