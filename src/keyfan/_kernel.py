"""The batched-draw engine behind every keyfan sampler.

One jitted program computes, for every element of a ``(*batch, *event)`` output, the key of its
batch coordinate (``stream.child`` down the hierarchy) and the bits at its event position
(``stream.element_bits``), then a distribution's bits-to-value step. Nothing is materialised in
between: the split and the draw are one elementwise computation.

Layout matters on CPU. The computation runs over a flat index ``f`` of ``rows * n`` elements
(``row = f // n``, ``position = f % n``): with a small event (``n`` = 3, 10) a 2-D ``(rows, n)``
loop does not vectorise, and with a large one the flat loop measured as fast as a 2-D loop that
computes each row's key once. The flat result is produced inside a ``lax.cond`` whose predicate
is always true but not a compile-time constant: that keeps the final reshape to
``(*batch, *event)`` out of the fusion (XLA would otherwise drive the whole loop over the small
trailing axis, about 8x slower). It changes no value.

Bits depend only on coordinates, so the same program can compute any block of the output:
blocks of rows (``chunk_size``, bounded working memory, ``offset``) and shards of a mesh (each
device computes its own block from ``lax.axis_index``, no communication) give identical bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.sharding import NamedSharding, PartitionSpec

from keyfan._keyarg import raw_data
from keyfan.streams import Stream, Words

__all__ = ["BitsFn", "draw"]

_PAD_BELOW = 2**16
_MAX_BLOCK = 2**31 - 1
"""Most elements computed by one block (a flat uint32 index; larger draws are chunked)."""

BitsFn = Callable[..., Array]
"""``bits(bit_width, *, path=(), counter_offset=0, draw_size=None) -> flat uint array``."""


def _add_words(offset: Words, x: Array) -> Words:
    """64-bit ``offset + x`` on (hi, lo) uint32 words, ``x`` a uint32 array."""
    lo = offset[1] + x
    hi = offset[0] + (lo < x).astype(np.uint32)
    return hi, lo


def _block_bits(stream: Stream, key: Words, batch_shape: tuple[int, ...],
                local_shape: tuple[int, ...], offsets: Sequence[Words | None], event_size: int,
                bit_width: int, path: tuple[tuple[int, int], ...], counter_offset: int,
                draw_size: int) -> Array:
    """Flat bits of a block of rows: element ``(r, e)`` is ``element_bits(key_r, e)``."""
    rows = math.prod(local_shape)
    flat = lax.iota(np.uint32, _padded(rows * event_size))
    if event_size == 1:
        row, position = flat, jnp.zeros((), np.uint32)
    else:
        row, position = flat // np.uint32(event_size), flat % np.uint32(event_size)
    coords = []
    for axis in range(len(local_shape) - 1, 0, -1):
        coords.append(row % np.uint32(local_shape[axis]))
        row = row // np.uint32(local_shape[axis])
    if local_shape:
        coords.append(row)
    coords.reverse()
    k = key
    for axis, coord in enumerate(coords):
        offset = offsets[axis]
        index = (jnp.zeros_like(coord), coord) if offset is None else _add_words(offset, coord)
        k = stream.child(k, index, batch_shape[axis])
    for index, size in path:
        k = stream.child(k, (np.uint32(0), np.uint32(index)), size)
    counter = position + np.uint32(counter_offset) if counter_offset else position
    bits = stream.element_bits(k, counter, draw_size, bit_width)
    return jnp.broadcast_to(bits, flat.shape)


def _padded(size: int) -> int:
    """``size`` rounded up to a multiple of 64 when small: a short loop whose trip count is not a
    multiple of the vector width makes LLVM unroll a scalar remainder, and compiles take seconds.
    The extra elements are computed and dropped; they change no value."""
    return -(-size // 64) * 64 if size < _PAD_BELOW else size


def _unfused(fn: Callable[..., Array], key_data: Array, *operands: Array) -> Array:
    """``fn(key_data, *operands)`` in a branch of its own, so its flat loop stays flat."""
    out = jax.eval_shape(fn, key_data, *operands)
    always = (key_data[0] | np.uint32(1)) != np.uint32(0)
    return lax.cond(always, fn, lambda *_: jnp.zeros(out.shape, out.dtype), key_data, *operands)


def _compute_block(stream: Stream, transform: Callable[..., Array], key_data: Array,
                   batch_shape: tuple[int, ...], local_shape: tuple[int, ...],
                   offsets: Sequence[Words | None], event_shape: tuple[int, ...],
                   params: Sequence[Array]) -> Array:
    event_size = math.prod(event_shape)
    out_shape = local_shape + event_shape

    def flat(key_data: Array, *params: Array) -> Array:
        key = (key_data[0], key_data[1])

        def bits(bit_width: int, *, path: tuple[tuple[int, int], ...] = (), counter_offset: int = 0,
                 draw_size: int | None = None) -> Array:
            return _block_bits(stream, key, batch_shape, local_shape, offsets, event_size,
                               bit_width, path, counter_offset,
                               event_size if draw_size is None else draw_size)

        size = math.prod(out_shape)
        flat_params = [jnp.broadcast_to(p, out_shape).reshape(-1) for p in params]
        flat_params = [jnp.pad(p, (0, _padded(size) - size), mode="edge") for p in flat_params]
        return transform(bits, *flat_params)

    if math.prod(out_shape) == 0:
        empty = jax.eval_shape(flat, key_data, *params)
        return jnp.zeros(out_shape, empty.dtype)
    return _unfused(flat, key_data, *params)[: math.prod(out_shape)].reshape(out_shape)


def _slice_rows(p: Array, start: Array | int, size: int) -> Array:
    return p if p.shape[0] == 1 else lax.dynamic_slice_in_dim(p, start, size, axis=0)


def _compute(stream: Stream, transform: Callable[..., Array], key_data: Array,
             batch_shape: tuple[int, ...], local_shape: tuple[int, ...],
             offsets: list[Words | None], event_shape: tuple[int, ...], params: Sequence[Array],
             chunk_size: int | None) -> Array:
    """The block ``local_shape`` at ``offsets``, computed ``chunk_size`` rows of axis 0 at a time."""
    per_row = math.prod(local_shape[1:]) * math.prod(event_shape)
    if not local_shape or (chunk_size is None and local_shape[0] * per_row <= _MAX_BLOCK):
        return _compute_block(stream, transform, key_data, batch_shape, local_shape, offsets,
                              event_shape, params)
    if per_row > _MAX_BLOCK:
        raise ValueError(
            f"one row of batch axis 0 holds {per_row} values; keyfan computes at most "
            f"{_MAX_BLOCK} values per block. Move more of the shape into the batch."
        )
    rows = local_shape[0]
    chunk = min(chunk_size or rows, max(1, _MAX_BLOCK // max(per_row, 1)), max(rows, 1))
    n_full, tail = divmod(rows, chunk)
    base = offsets[0] if offsets[0] is not None else (np.uint32(0), np.uint32(0))

    def block(start: Array | int, size: int) -> Array:
        start_words = _add_words(base, jnp.asarray(start).astype(np.uint32))
        return _compute_block(stream, transform, key_data, batch_shape,
                              (size, *local_shape[1:]), [start_words, *offsets[1:]],
                              event_shape, [_slice_rows(p, start, size) for p in params])

    out_struct = jax.eval_shape(lambda: block(0, chunk))
    out = jnp.zeros(local_shape + event_shape, out_struct.dtype)

    def body(i: Array, out: Array) -> Array:
        start = i * chunk
        return lax.dynamic_update_slice_in_dim(out, block(start, chunk), start, axis=0)

    out = lax.fori_loop(0, n_full, body, out)
    if tail:
        start = n_full * chunk
        out = lax.dynamic_update_slice_in_dim(out, block(start, tail), start, axis=0)
    return out


def _mesh_axes(entry: Any) -> tuple[str, ...]:
    if entry is None:
        return ()
    return tuple(entry) if isinstance(entry, (tuple, list)) else (entry,)


@partial(jax.jit, static_argnames=("stream", "transform", "batch_shape", "event_shape",
                                   "chunk_size", "sharding"))
def _run(key: Array, offset_data: Array, params: tuple[Array, ...], *, stream: Stream,
         transform: Callable[..., Array], batch_shape: tuple[int, ...],
         event_shape: tuple[int, ...], chunk_size: int | None,
         sharding: NamedSharding | None) -> Array:
    key_data = raw_data(key)

    def axis_offsets(offset_data: Array) -> list[Words | None]:
        offsets: list[Words | None] = [None] * len(batch_shape)
        if batch_shape:
            offsets[0] = (offset_data[0], offset_data[1])
        return offsets

    if sharding is None:
        return _compute(stream, transform, key_data, batch_shape, batch_shape,
                        axis_offsets(offset_data), event_shape, params, chunk_size)

    spec = tuple(sharding.spec) + (None,) * (len(batch_shape) + len(event_shape) - len(sharding.spec))
    mesh = sharding.mesh
    axes = [_mesh_axes(entry) for entry in spec[: len(batch_shape)]]
    local_shape = tuple(size // math.prod(mesh.shape[a] for a in names)
                        for size, names in zip(batch_shape, axes, strict=True))

    def local(key_data: Array, offset_data: Array, *params: Array) -> Array:
        local_offsets = axis_offsets(offset_data)
        for axis, names in enumerate(axes):
            if names:
                start = (lax.axis_index(names) * local_shape[axis]).astype(np.uint32)
                base = local_offsets[axis] or (np.uint32(0), np.uint32(0))
                local_offsets[axis] = _add_words(base, start)
        return _compute(stream, transform, key_data, batch_shape, local_shape, local_offsets,
                        event_shape, params, chunk_size)

    rank = len(batch_shape) + len(event_shape)
    param_specs = tuple(
        PartitionSpec(*[spec[d] if p.shape[d] != 1 else None for d in range(rank)]) for p in params
    )
    return jax.shard_map(local, mesh=mesh,
                         in_specs=(PartitionSpec(), PartitionSpec(), *param_specs),
                         out_specs=PartitionSpec(*spec), check_vma=False)(key_data, offset_data, *params)


def draw(stream: Stream, key: Array, transform: Callable[..., Array],
         batch_shape: tuple[int, ...], event_shape: tuple[int, ...], params: Sequence[Array] = (),
         *, offset: int = 0, chunk_size: int | None = None,
         sharding: NamedSharding | None = None) -> Array:
    """Runs ``transform`` over a batched draw; the caller has checked every argument.

    Args:
      stream: the stream to draw on.
      key: the base key, typed or raw uint32[2] (unwrapped inside the jitted program).
      transform: hashable callable ``transform(bits, *flat_params) -> flat values`` (a frozen
        dataclass instance, so the jitted program is cached per distribution and dtype).
      batch_shape: the batch; row ``(i, j, ...)`` uses ``at(key, (offset + i, j, ...))``.
      event_shape: the per-example shape of one draw.
      params: arrays broadcastable to ``(*batch_shape, *event_shape)`` of full rank.
      offset: index of the first row of batch axis 0 (a block of a larger virtual batch).
      chunk_size: rows of batch axis 0 computed at a time.
      sharding: a ``NamedSharding`` over ``(*batch_shape, *event_shape)``; each device computes
        its own block.

    Returns:
      An array of shape ``(*batch_shape, *event_shape)``.
    """
    offset_data = np.array([offset >> 32, offset & 0xFFFFFFFF], dtype=np.uint32)
    return _run(key, offset_data, tuple(params), stream=stream, transform=transform,
                batch_shape=batch_shape, event_shape=event_shape, chunk_size=chunk_size,
                sharding=sharding)
