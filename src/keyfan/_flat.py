"""Loops that stay fast on XLA's CPU backend: padded, computed two values at a time, block by
block when large, each in a branch of its own, then cut and reshaped.

A loop runs over a leading axis whose indices hold one value each (a flat loop, vectorised along
that axis) or one row each (a rows loop, ``align=1``, vectorised along rows of 32 or more
values). Four measured effects shape it (jax 0.10.2, CPU):

* A flat elementwise loop of Threefry over a size that is not a multiple of the vector width ran
  about 10x slower: ``normal`` of ``N = 999_999`` took 37 ms against 3.5 ms for ``10**6`` (JAX's own
  ``split`` and ``normal`` show it too: 27.5 vs 4.0 ms). Short odd loops also made LLVM unroll a
  scalar remainder, and compiles took seconds. Computing ``padded(size)`` elements and dropping
  the extra ones fixes both.
* A draw is one long chain of dependent operations per value (a key's hash, then the value's
  hash, then the bits-to-value step), and XLA's loop holds one vector of values per iteration:
  the CPU waits on that chain (two chained hashes took 2.7x one hash; two independent ones 1.7x).
  Computing two values per iteration, the ``i``-th of each half of the range, gives it two
  independent chains to overlap. XLA fuses a loop with one output only, so the two halves travel
  as the real and imaginary parts of one complex array and are put back in order by one copy:
  ``normal`` at ``10**6`` went from 9.2 to 6.0 ms on one core, copy included; ``bits`` from 4.7
  to 3.8 ms.
* That copy, and the complex temporary, cost most once they leave the cache: loops of more than
  four blocks of :data:`BLOCK_VALUES` run block by block, each block written into the result.
* XLA fuses what follows (the cut back to ``size``, the reshape to ``(N, n)``) into the loop and
  then drives the whole loop over the result's shape: an odd size again, or a small trailing
  axis that does not vectorise (8x slower for ``(10**6, 3)``). Producing the flat result inside a
  ``lax.cond`` whose predicate is always true, but not a compile-time constant, keeps it a loop of
  its own.

None of this changes a value. Under ``vmap`` with a batched predicate the ``cond`` becomes a select
over both branches: still correct, only the loop is no longer kept apart.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

__all__ = ["Span", "padded", "unfused", "flat_loop"]

LANES = 64
"""Loops over scalar values are padded to a multiple of this (twice this when paired)."""

_PAIRED = {np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.uint32)}
"""Value dtypes computed two at a time (as the parts of a complex64)."""
BLOCK_VALUES = 2**18
"""Paired loops over more than four blocks of this many values run block by block, so that each
block's temporaries stay in cache: ``normal`` of ``10**7`` values took 109 ms in one loop and
85 ms in blocks (one core)."""
PAIRED_MIN_SIZE = 4096
"""Loops of fewer values run one value at a time: pairing saves little there (0.029 against
0.026 ms for ``normal`` of 1024 values, one core) and compiles the draw twice into the loop."""


def padded(size: int, align: int = LANES) -> int:
    """``size`` rounded up to a multiple of ``align``."""
    return -(-size // align) * align


def pad(x: Array, size: int) -> Array:
    """``x`` extended along its leading axis to ``size`` by repeating its last entry."""
    extra = size - x.shape[0]
    return x if not extra else jnp.pad(x, [(0, extra)] + [(0, 0)] * (x.ndim - 1), mode="edge")


@dataclasses.dataclass(frozen=True)
class Span:
    """The indices ``start .. start + length - 1`` of a loop's leading axis, of ``total`` (padded).

    ``start`` is a Python int, or a traced integer scalar inside a loop over blocks.
    """

    start: int | Array
    length: int
    total: int

    def index(self) -> Array:
        """The indices, uint32 ``(length,)``."""
        f = lax.iota(np.uint32, self.length)
        if isinstance(self.start, int):
            return f + np.uint32(self.start) if self.start else f
        return f + self.start.astype(np.uint32)

    def take(self, x: Array) -> Array:
        """The span of an array ``x`` indexed by the leading axis (of at most ``total`` entries;
        missing ones repeat the last)."""
        x = pad(x, self.total)
        if self.length == self.total:
            return x
        if isinstance(self.start, int):
            return lax.slice_in_dim(x, self.start, self.start + self.length)
        return lax.dynamic_slice_in_dim(x, self.start, self.length)


def unfused(fn: Callable[..., Array], first: Array, *operands: Array) -> Array:
    """``fn(first, *operands)`` in a branch of its own; ``first`` is a uint32 array (a key)."""
    out = jax.eval_shape(fn, first, *operands)
    always = (jnp.ravel(first)[0] | np.uint32(1)) != np.uint32(0)
    return lax.cond(always, fn, lambda *_: jnp.zeros(out.shape, out.dtype), first, *operands)


def _as_float32(x: Array) -> Array:
    """``x`` (float32, int32 or uint32) as float32: integers by their bits, floats as they are
    (so that derivatives flow through; a bitcast's derivative is zero)."""
    return x if x.dtype == np.float32 else lax.bitcast_convert_type(x, np.float32)


def _paired(values: Callable[..., Array], start: int | Array, length: int, total: int, dtype: np.dtype,
            first: Array, operands: tuple[Array, ...]) -> Array:
    """Indices ``start .. start + length - 1`` of a loop over ``total``, two at a time: the
    ``i``-th of each half together, as the parts of a complex64 loop, then put back in order.

    ``length`` is even; the values are of ``dtype`` (one of ``_PAIRED``), and come back bit for bit
    (a float32 NaN keeps its payload: building and taking apart a complex only moves bits).
    """
    half = length // 2
    halves = Span(start, half, total), Span(start + half, half, total)

    def both(*args: Array) -> Array:
        lo, hi = (_as_float32(values(span, *args)) for span in halves)
        return lax.complex(lo, hi)

    parts = unfused(both, first, *operands)
    result = jnp.concatenate([parts.real, parts.imag])
    return result if dtype == np.float32 else lax.bitcast_convert_type(result, dtype)


def flat_loop(values: Callable[..., Array], size: int, first: Array, *operands: Array,
              align: int = LANES) -> Array:
    """The values at indices ``0 .. size - 1`` of a leading axis, computed as a loop of its own.

    Args:
      values: ``values(span, first, *operands)`` returns the values at the indices of ``span`` (a
        :class:`Span`), stacked along the leading axis; the values at an index must depend on that
        index alone, whatever the span.
      size: length of the leading axis.
      first: a uint32 array (a key), the first operand.
      operands: further operands.
      align: the leading axis is padded to a multiple of this: :data:`LANES` when each index holds
        one value (the loop vectorises along it), 1 when each holds a row long enough to
        vectorise along (32 values or more).

    Returns:
      ``values`` at indices ``0 .. size - 1``.
    """
    whole = Span(0, padded(size, align), padded(size, align))
    out = jax.eval_shape(lambda *args: values(whole, *args), first, *operands)
    per_index = math.prod(out.shape[1:])
    paired = (out.dtype in _PAIRED and size * per_index >= PAIRED_MIN_SIZE
              # a flat loop pairs scalars only: a small trailing axis (a key's two words) does not vectorise
              and (align == 1 or out.ndim == 1)
              # a rows loop pads an odd count by one row: at most 1/64 of the work
              and (align > 1 or size % 2 == 0 or size >= LANES))
    if not paired:
        result = unfused(lambda *args: values(whole, *args), first, *operands)
        return result if whole.total == size else result[:size]
    total = padded(size, 2 * align)
    block = max(2 * align, padded(BLOCK_VALUES // max(per_index, 1), 2 * align))
    if size <= 4 * block:
        result = _paired(values, 0, total, total, out.dtype, first, operands)
        return result if total == size else result[:size]
    n_full, tail = divmod(size, block)

    def body(i: Array, result: Array) -> Array:
        start = i * block
        piece = _paired(values, start, block, total, out.dtype, first, operands)
        return lax.dynamic_update_slice_in_dim(result, piece, start, axis=0)

    result = lax.fori_loop(0, n_full, body, jnp.zeros((size, *out.shape[1:]), out.dtype))
    if tail:
        piece = _paired(values, n_full * block, padded(tail, 2 * align), total, out.dtype, first, operands)
        result = lax.dynamic_update_slice_in_dim(result, piece[:tail], n_full * block, axis=0)
    return result
