"""The batched-draw engine behind every keyfan sampler.

One jitted program computes, for every element of a ``(*batch, *event)`` output, the key of its
batch coordinate (``stream.child`` down the hierarchy) and the bits at its event position
(``stream.element_bits``), then a distribution's bits-to-value step. Nothing is materialised in
between: the split and the draw are one elementwise computation.

Layout matters on CPU. The draw runs as loops of their own (``keyfan._flat``: padded, two
values at a time from 4096 values on, block by block past four blocks of about 2**18 values).
A 2-D ``(rows, n)`` loop with a small ``n`` does not vectorise, so small events run over a flat
index ``f`` of ``rows * n`` values (``position = f % n``). How a value gets its row's key depends
on how many hashes that key costs per value, ``depth`` (one per batch axis), against reading it
from memory:

* ``n >= 64``: the ``rows`` keys are computed first, and the draw loops over rows, each row a
  vector of ``n`` values under one key (``normal`` of 1000 x 1000, one core: 6.3 ms over a flat
  index that reads each value's key, 5.3 ms over rows, 4.0 ms over rows two at a time);
* ``n < 64`` where reading saves most of ``depth`` hashes per value (``n >= 8``, or a nested
  batch with ``n >= 2``): the keys are computed first and each value gathers its row's key
  (``normal`` of 4M values at ``n = 8..32``: 21.6 -> 15.5 ms; nested ``(1e5, 10) x 4``: 13.3 ->
  11.3 ms). For ``n`` of 2 to 7 on one batch axis a gather costs about what it saves;
* otherwise each value hashes its row's key itself, so the whole draw is one loop.

Precomputed row keys take 8 bytes per row of a block (as much as the output itself for a
nested batch of 2 float32 values per example); ``chunk_size`` bounds them with the rest. None of
this changes a value.

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

from keyfan._flat import PAIRED_MIN_SIZE, Span, flat_loop, unfused
from keyfan._flat import padded as padded_size
from keyfan._keyarg import raw_data
from keyfan.streams import Stream, Words

__all__ = ["BitsFn", "coordinate_keys", "draw", "set_draw_hook"]

_KEYS_FIRST_MIN_EVENT = 64
_GATHER_MIN_EVENT = 8
"""On one batch axis, events of ``_GATHER_MIN_EVENT`` to 63 values gather precomputed row keys."""
_MAX_BLOCK = 2**31 - 1
"""Most elements computed by one block (a flat uint32 index; larger draws are chunked)."""

BitsFn = Callable[..., Array]
"""``bits(bit_width, *, path=(), counter_offset=0, draw_size=None) -> flat uint array``."""

_draw_hook: Callable[[Any], None] | None = None
"""Called with the base key of every draw at its entry (``kf.sanitize()`` sets it while a check
is installed; None otherwise, so the samplers pay one comparison)."""


def set_draw_hook(hook: Callable[[Any], None] | None) -> None:
    """Makes ``hook(key)`` run at the entry of every keyfan draw (None: nothing runs).

    The sampler entry is where a keyfan draw's key is still one value: past it the draw is plain
    uint32 arithmetic, which a check at JAX's primitives cannot tell from other arithmetic. The
    samplers know nothing of the check; the sanitizer installs its hook here.
    """
    global _draw_hook
    _draw_hook = hook


def _add_words(offset: Words, x: Array) -> Words:
    """64-bit ``offset + x`` on (hi, lo) uint32 words, ``x`` a uint32 array."""
    lo = offset[1] + x
    hi = offset[0] + (lo < x).astype(np.uint32)
    return hi, lo


def coordinate_keys(stream: Stream, key: Words, batch_shape: tuple[int, ...],
                     local_shape: tuple[int, ...], offsets: Sequence[Words | None], row: Array) -> Words:
    """Keys of the batch coordinates of flat row indices ``row`` (uint32) of a block."""
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
    return k


def _element_bits(stream: Stream, row_key: Words, position: Array, shape: tuple[int, ...], bit_width: int,
                  path: tuple[tuple[int, int], ...], counter_offset: int, draw_size: int) -> Array:
    """Bits of ``shape``: each is ``element_bits`` at its ``position`` under its row's key."""
    k = row_key
    for index, n in path:
        k = stream.child(k, (np.uint32(0), np.uint32(index)), n)
    counter = position + np.uint32(counter_offset) if counter_offset else position
    return jnp.broadcast_to(stream.element_bits(k, counter, draw_size, bit_width), shape)


def _compute_block(stream: Stream, transform: Callable[..., Array], key_data: Array,
                   batch_shape: tuple[int, ...], local_shape: tuple[int, ...],
                   offsets: Sequence[Words | None], event_shape: tuple[int, ...],
                   params: Sequence[Array]) -> Array:
    """One block of rows: keys of its batch coordinates, then the draw, as loops of their own.

    With a large event the row keys are computed first (``rows`` hashes, a program of their own)
    and the draw loops over rows, each a vector of ``event_size`` values under one key; with a
    mid-sized event the draw loops over values and each gathers its row's key; with a small one
    each value hashes its row's key itself, which keeps the whole draw one loop. All give the
    same bits.
    """
    event_size = math.prod(event_shape)
    out_shape = local_shape + event_shape
    rows, size = math.prod(local_shape), math.prod(out_shape)
    keys_first = event_size >= _KEYS_FIRST_MIN_EVENT
    depth = len(local_shape)  # hashes that derive one row's key
    gather_keys = not keys_first and depth >= 1 and event_size >= (2 if depth >= 2 else _GATHER_MIN_EVENT)

    def row_keys(key_data: Array) -> Array:
        row = lax.iota(np.uint32, padded_size(rows))
        words = coordinate_keys(stream, (key_data[0], key_data[1]), batch_shape, local_shape, offsets, row)
        return jnp.stack([jnp.broadcast_to(w, row.shape) for w in words])

    def draw_values(row_key: Words, position: Array, shape: tuple[int, ...], values_params: list[Array]) -> Array:
        def bits(bit_width: int, *, path: tuple[tuple[int, int], ...] = (), counter_offset: int = 0,
                 draw_size: int | None = None) -> Array:
            return _element_bits(stream, row_key, position, shape, bit_width, path, counter_offset,
                                 event_size if draw_size is None else draw_size)

        return transform(bits, *values_params)

    def by_value(span: Span, keys: Array, *params: Array) -> Array:
        """The values at flat indices ``span`` of the block, shape ``(span.length,)``."""
        f = span.index()
        position = jnp.zeros((), np.uint32) if event_size == 1 else f % np.uint32(event_size)
        if gather_keys:
            row = jnp.minimum(f // np.uint32(event_size), np.uint32(max(rows - 1, 0)))  # padding: the last row
            row_key = (keys[0][row], keys[1][row])
        else:
            row = f if event_size == 1 else f // np.uint32(event_size)
            row_key = coordinate_keys(stream, (keys[0], keys[1]), batch_shape, local_shape, offsets, row)
        return draw_values(row_key, position, (span.length,),
                           [span.take(jnp.broadcast_to(p, out_shape).reshape(-1)) for p in params])

    # An odd number of rows of even length loops over half-rows, so that the loop can pair them
    # (keyfan._flat pads an odd count by one, or leaves a short one unpaired: one row of 10**6
    # normals took 5.1 ms, two rows of half as many 3.9 ms, one core).
    halves = 2 if rows % 2 and event_size % 2 == 0 and size >= PAIRED_MIN_SIZE else 1
    width = event_size // halves

    def by_row(span: Span, keys: Array, *params: Array) -> Array:
        """Rows (or half-rows) ``span`` of the block, shape ``(span.length, width)``."""
        row_key = tuple(span.take(jnp.repeat(w[:rows], halves))[:, None] for w in keys)
        position = lax.broadcasted_iota(np.uint32, (span.length, width), 1)
        if halves > 1:
            position = position + (span.index() % np.uint32(2) * np.uint32(width))[:, None]
        return draw_values(row_key, position, (span.length, width),
                           [span.take(jnp.broadcast_to(p, out_shape).reshape(rows * halves, width)) for p in params])

    if size == 0:  # only the dtype is needed; with row keys first, the draw reads (2, rows) keys
        keys_struct = (jax.ShapeDtypeStruct((2, padded_size(rows)), np.uint32) if keys_first or gather_keys
                       else key_data)
        empty = jax.eval_shape(lambda *args: by_value(Span(0, 0, 0), *args), keys_struct, *params)
        return jnp.zeros(out_shape, empty.dtype)
    if keys_first:
        keys = unfused(row_keys, key_data)
        return flat_loop(by_row, rows * halves, keys, *params, align=1).reshape(out_shape)
    keys = unfused(row_keys, key_data) if gather_keys else key_data
    return flat_loop(by_value, size, keys, *params).reshape(out_shape)


def _slice_rows(p: Array, start: Array | int, size: int) -> Array:
    return p if p.shape[0] == 1 else lax.dynamic_slice_in_dim(p, start, size, axis=0)


def _compute(stream: Stream, transform: Callable[..., Array], key_data: Array,
             batch_shape: tuple[int, ...], local_shape: tuple[int, ...],
             offsets: list[Words | None], event_shape: tuple[int, ...], params: Sequence[Array],
             chunk_size: int | None) -> Array:
    """The block ``local_shape`` at ``offsets``, computed ``chunk_size`` rows of axis 0 at a time."""
    per_row = math.prod(local_shape[1:]) * math.prod(event_shape)
    if not local_shape or 0 in local_shape or (chunk_size is None and local_shape[0] * per_row <= _MAX_BLOCK):
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

    def block(key_data: Array, base: Words, inner: list[Words | None], params: tuple[Array, ...],
              start: Array | int, size: int) -> Array:
        start_words = _add_words(base, jnp.asarray(start).astype(np.uint32))
        return _compute_block(stream, transform, key_data, batch_shape, (size, *local_shape[1:]),
                              [start_words, *inner], event_shape, [_slice_rows(p, start, size) for p in params])

    args = (key_data, offsets[0] if offsets[0] is not None else (np.uint32(0), np.uint32(0)),
            list(offsets[1:]), tuple(params))
    dtype = jax.eval_shape(lambda: block(*args, 0, chunk)).dtype

    def chunks(held: np.dtype, *args: Any) -> Array:
        """The rows, ``chunk`` at a time, written in place into a result held as ``held`` (the
        values' dtype, or an unsigned type of their width, bit for bit)."""
        def write(out: Array, start: Array | int, size: int) -> Array:
            piece = block(*args, start, size)
            piece = piece if held == dtype else lax.bitcast_convert_type(piece, held)
            return lax.dynamic_update_slice_in_dim(out, piece, start, axis=0)

        out = lax.fori_loop(0, n_full, lambda i, out: write(out, i * chunk, chunk),
                            jnp.zeros(local_shape + event_shape, held))
        if tail:
            out = write(out, n_full * chunk, tail)
        return out if held == dtype else lax.bitcast_convert_type(out, dtype)

    if not (jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize == 2):
        return chunks(dtype, *args)

    # 16-bit floats are held as uint16: XLA's CPU backend widens a bfloat16/float16 update to
    # float32 and converts the whole result for each chunk (bfloat16 normal of 1e7 in chunks of
    # 2**18 rows: 615 ms against 110 unchunked). A bitcast's derivative is zero, so derivatives
    # are those of the same loop held in the values' dtype.
    @jax.custom_jvp
    def held_as_bits(*args: Any) -> Array:
        return chunks(np.dtype(np.uint16), *args)

    held_as_bits.defjvp(lambda primals, tangents: jax.jvp(partial(chunks, dtype), primals, tangents))
    return held_as_bits(*args)


def mesh_axes(entry: Any) -> tuple[str, ...]:
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
    axes = [mesh_axes(entry) for entry in spec[: len(batch_shape)]]
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
    if _draw_hook is not None:
        _draw_hook(key)
    offset_data = np.array([offset >> 32, offset & 0xFFFFFFFF], dtype=np.uint32)
    return _run(key, offset_data, tuple(params), stream=stream, transform=transform,
                batch_shape=batch_shape, event_shape=event_shape, chunk_size=chunk_size,
                sharding=sharding)
