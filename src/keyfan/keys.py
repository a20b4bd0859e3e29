"""Seeds, keys and fan-out: one seed, one key per coordinate, each computable alone.

The guarantees (tested bitwise):

* ``key(seed, stream)`` maps every integer seed as ``jax.random.PRNGKey`` does under
  ``jax_enable_x64=True``, whatever that flag says: Python ints in ``[-2**63, 2**64)`` to
  distinct keys, NumPy/JAX integers at their own width (narrow ones zero-extended).
* ``fan_out(key, (n,))`` equals ``jax.random.split(key, n)`` on the key's stream.
* Nested fan-out is hierarchical: ``fan_out(key, (a, b))[i, j] == at(key, (i, j)) ==
  at(at(key, i), j)``. On the ``"threefry"`` stream a coordinate's key therefore depends on
  neither ``a`` nor ``b``: growing a batch never moves an existing example's key. (The flat grid
  ``split(key, a * b).reshape(a, b)`` of :func:`keyfan.recipes.key_grid` does not have this
  property: changing ``b`` moves every key after the first row.)
* ``step(key, t)`` equals ``jax.random.fold_in(key, t)``; ``example_keys(key, ids, step=t)`` gives
  the key of each example id, independent of the order, padding and sharding of ``ids``.

Every function takes a typed key (``kf.key``, ``jax.random.key``) or raw ``uint32[2]`` key data
(``jax.random.PRNGKey``) and returns keys of the same kind.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from functools import partial
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.typing import ArrayLike

from keyfan._checks import as_int, check_fits_memory, check_not_a_key, check_traced, is_traced
from keyfan._flat import Span, flat_loop
from keyfan._kernel import coordinate_keys
from keyfan._keyarg import check_key
from keyfan.streams import Stream, Words, get_stream
from keyfan.streams._base import seed_words
from keyfan.streams._threefry2x32 import threefry2x32
from keyfan.typing import KeyLike, ShapeLike, StreamName

__all__ = ["at", "example_keys", "fan_out", "key", "named", "step", "stream_of"]

_MASK32 = 0xFFFFFFFF


def key(seed: ArrayLike, stream: StreamName = "threefry") -> Array:
    """Makes a typed key from an integer seed, on a named stream.

    The seed maps to key data exactly as ``jax.random.PRNGKey(seed)`` maps it under
    ``jax_enable_x64=True``, whatever that flag says:

    * a Python int (or whole float) in ``[-2**63, 2**64)`` is a 64-bit integer: the high word is
      ``seed mod 2**64 >> 32``, the low word ``seed mod 2**32``. So no two such seeds share a key,
      whereas JAX's default 32-bit mode gives ``PRNGKey(2**40 + 5) == PRNGKey(5)``; a negative
      seed ``s`` is the 64-bit pattern of ``s + 2**64``. Under ``jit`` a Python int arrives as a
      weakly typed scalar and maps the same way (in 32-bit mode JAX refuses ints outside int32);
    * a NumPy or JAX integer scalar keeps its own width: a 64-bit one gives its two words, a
      narrower one its 32-bit pattern in the low word and a zero high word
      (``kf.key(np.int32(-2))`` has data ``[0, 0xFFFFFFFE]``, as JAX's ``PRNGKey`` in either mode).

    ``jax.random.key(seed, impl=jax.random.key_impl(kf.key(0)))`` gives exactly JAX's Threefry
    key data under the current flags (JAX narrows a Python int to int32 in 32-bit mode before
    the stream sees it, so ``2**31 + 99`` gives ``[0, 2**31 + 99]`` there, as in JAX).

    Args:
      seed: an integer: Python int, NumPy integer, whole float, 0-d array, or a traced integer
        scalar inside ``jit``.
      stream: ``"threefry"`` (JAX's partitionable Threefry, its default since 0.5) or
        ``"threefry-legacy"`` (JAX 0.4's stream, for reproducing old results).

    Returns:
      A scalar typed key whose dtype names its stream, with the key data above.

    Raises:
      TypeError: ``seed`` is not an integer (a string, a bool, a key, a non-scalar array).
      ValueError: a non-whole, NaN or infinite float, a seed outside ``[-2**63, 2**64)``, or an
        unknown ``stream``.

    Examples:
      >>> import keyfan as kf
      >>> k = kf.key(0)
      >>> kf.normal(k, batch=(4,), shape=(3,)).shape
      (4, 3)
    """
    impl = get_stream(stream)
    check_not_a_key("seed", seed)
    if is_traced(seed) or isinstance(seed, jax.Array):
        seed_array = jnp.asarray(seed)
        if seed_array.ndim or not jnp.issubdtype(seed_array.dtype, jnp.integer) \
                or seed_array.dtype == np.bool_:
            if not is_traced(seed):
                return key(as_int("seed", seed, lo=-(2**63), hi=2**64), stream)
            raise TypeError(
                f"seed must be an integer scalar, got a traced value of shape {seed_array.shape} "
                f"and dtype {seed_array.dtype}."
            )
        weak = bool(getattr(jax.typeof(seed_array), "weak_type", False))
        return cast(Array, jax.random.wrap_key_data(seed_words(seed_array, python_int=weak), impl=impl.spec))
    value = as_int("seed", seed, lo=-(2**63), hi=2**64)
    dtype = getattr(seed, "dtype", None)
    if isinstance(seed, (np.integer, np.ndarray)) and np.issubdtype(dtype, np.integer) \
            and np.dtype(dtype).itemsize < 8:
        value %= 2**32  # a narrow integer type: its 32-bit pattern, zero-extended
    value %= 2**64
    data = np.array([value >> 32, value & _MASK32], dtype=np.uint32)
    return cast(Array, jax.random.wrap_key_data(cast(Array, data), impl=impl.spec))


def stream_of(key: KeyLike, *, stream: StreamName | None = None) -> str:
    """The name of the stream ``key`` is read on (a raw key is read on ``stream``, default
    ``"threefry"``).

    Args:
      key: a key, or an array of keys.
      stream: the stream to read a raw or JAX-typed key on (default ``"threefry"``).

    Returns:
      The stream's name, ``"threefry"`` or ``"threefry-legacy"``.

    Raises:
      TypeError: ``key`` is not a key.
      ValueError: ``stream=`` disagrees with a keyfan key's own stream.

    Examples:
      >>> import jax, keyfan as kf
      >>> kf.stream_of(kf.key(0, "threefry-legacy")), kf.stream_of(jax.random.PRNGKey(0))
      ('threefry-legacy', 'threefry')
    """
    return check_key("key", key, stream=stream, batched=True).stream.name


# -- Index words -------------------------------------------------------------------------------

def _scalar_index_words(name: str, value: Any, size: int | None) -> Words:
    """A scalar index as (hi, lo) uint32 words; concrete values are range-checked."""
    if is_traced(value) or (isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jnp.integer)):
        value = jnp.asarray(value)
        if value.ndim or not jnp.issubdtype(value.dtype, jnp.integer):
            raise TypeError(f"{name} must be an integer scalar, got shape {value.shape} dtype {value.dtype}.")
        if not is_traced(value):
            return _scalar_index_words(name, int(value), size)
        _check_traced_ids(name, value, size)
        return _array_words(value)
    i = as_int(name, value, lo=0, hi=2**64 if size is None else size)
    return cast(Words, (np.uint32(i >> 32), np.uint32(i & _MASK32)))


def _check_traced_ids(name: str, ids: Array, size: int | None) -> None:
    """Range checks of traced indices or ids, run under ``checkify`` (see ``_checks.check_traced``);
    without it a negative value is read as its unsigned bit pattern (``-1`` as ``2**32 - 1``)."""
    if jnp.issubdtype(ids.dtype, jnp.signedinteger):
        check_traced(jnp.all(ids >= 0), f"{name} must be non-negative, got a minimum of {{low}}", low=jnp.min(ids))
    if size is not None and ids.dtype.itemsize * 8 > size.bit_length():
        check_traced(jnp.all(ids < size), f"{name} must be less than {size}, got {{value}}", value=jnp.max(ids))


def _array_words(ids: Array) -> Words:
    """Integer array (device, possibly traced) as (hi, lo) words; 64-bit dtypes keep the high word."""
    if ids.dtype.itemsize == 8:
        hi = lax.convert_element_type(lax.shift_right_logical(ids, ids.dtype.type(32)), np.uint32)
        lo = lax.convert_element_type(ids & ids.dtype.type(_MASK32), np.uint32)
        return hi, lo
    lo = lax.convert_element_type(ids, np.uint32)
    return jnp.zeros_like(lo), lo


def _ids_words(name: str, ids: Any) -> Words:
    """An array of non-negative integer ids as (hi, lo) words. Concrete ids (NumPy, lists, JAX
    arrays, also when closed over inside ``jit``) are checked on the host; traced ids are used as
    given."""
    if is_traced(ids):
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise TypeError(f"{name} must be an array of integers, got dtype {ids.dtype}.")
        _check_traced_ids(name, ids, None)
        return _array_words(ids)
    try:
        host = np.asarray(ids)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of integers, got {type(ids).__name__}.") from err
    if host.dtype == object and host.size:
        host = np.asarray([as_int(f"{name}[{i}]", v, lo=0, hi=2**64) for i, v in enumerate(host.ravel())],
                          dtype=np.uint64).reshape(host.shape)
    if host.size == 0:
        host = host.astype(np.uint64)
    if host.dtype == bool or not np.issubdtype(host.dtype, np.integer):
        raise TypeError(f"{name} must be an array of integers, got dtype {host.dtype}.")
    if host.size and np.issubdtype(host.dtype, np.signedinteger) and host.min() < 0:
        raise ValueError(f"{name} must be non-negative example ids, got a minimum of {host.min()}.")
    host = host.astype(np.uint64)
    return (jnp.asarray((host >> np.uint64(32)).astype(np.uint32)),
            jnp.asarray((host & np.uint64(_MASK32)).astype(np.uint32)))


def _hash_words(key: Words, index: Words) -> Words:
    """The stream-independent derivation ``hash(key; (hi, lo))`` used by step, named, example ids."""
    return threefry2x32(key[0], key[1], index[0], index[1])


# -- Fan-out -------------------------------------------------------------------------------------

@partial(jax.jit, static_argnames=("stream", "shape"))
def _fan_out_data(data: Array, stream: Stream, shape: tuple[int, ...]) -> Array:
    """uint32 ``(*shape, 2)``: the hierarchical keys of every coordinate, as one flat loop."""
    size = math.prod(shape)

    def keys(span: Span, data: Array) -> Array:
        row = span.index()
        words = coordinate_keys(stream, (data[0], data[1]), shape, shape, [None] * len(shape), row)
        return jnp.stack([jnp.broadcast_to(w, row.shape) for w in words], -1)

    return flat_loop(keys, size, data).reshape(*shape, 2)


def fan_out(key: KeyLike, batch_shape: ShapeLike, *, stream: StreamName | None = None) -> Array:
    """One key per coordinate of a (possibly nested) batch.

    Args:
      key: a single key (typed or raw ``uint32[2]``).
      batch_shape: an int or a tuple of ints, e.g. ``(n_chains, batch)``.
      stream: stream for a raw or JAX-typed key (default ``"threefry"``); a keyfan key carries
        its own.

    Returns:
      Keys of shape ``batch_shape`` (raw keys: ``uint32[*batch_shape, 2]``) with
        ``keys[i, j, ...] == at(key, (i, j, ...))``: for a 1-D batch ``jax.random.split(key, n)``
        on the key's stream; a nested batch splits hierarchically (``keys[i] ==
        fan_out(at(key, i), batch_shape[1:])``), so on ``"threefry"`` no coordinate's key depends
        on a batch size.

    Raises:
      TypeError: ``key`` is not a single key, or ``batch_shape`` is not a shape.
      ValueError: a negative axis, an axis of ``2**32`` or more (``2**31`` on the legacy stream),
        or more keys than memory holds.

    Examples:
      >>> import jax, keyfan as kf
      >>> keys = kf.fan_out(kf.key(0), (2, 3))
      >>> bool((jax.random.key_data(keys[1, 2]) == jax.random.key_data(kf.at(kf.key(0), (1, 2)))).all())
      True
    """
    arg = check_key("key", key, stream=stream)
    shape = arg.stream.check_batch_shape("batch_shape", batch_shape)
    check_fits_memory("fan_out's keys of batch_shape", shape, 8,
                      "draw with the samplers instead, which never build the keys "
                      "(kf.normal(key, batch=..., shape=...) with chunk_size= or offset= to bound memory), "
                      "or compute the keys you need with kf.at(key, index).")
    return arg.wrap(_fan_out_data(arg.data, arg.stream, shape))


def at(key: KeyLike, index: ArrayLike | Sequence[ArrayLike], *, batch_shape: ShapeLike | None = None,
       stream: StreamName | None = None) -> Array:
    """The key of one batch coordinate, computed alone (no key array is built).

    Args:
      key: a single key (typed or raw ``uint32[2]``).
      index: an int (or a traced integer scalar) or a tuple of them, one per nested batch axis.
        On ``"threefry"`` any index in ``[0, 2**64)`` is valid. A traced index cannot be checked
        while tracing: it is used as its unsigned bit pattern (``jax.jit(lambda j: kf.at(key,
        j))(-1) == kf.at(key, 2**32 - 1)``), and checked (negative, or outside ``batch_shape``)
        when the function is wrapped with ``jax.experimental.checkify.checkify``.
      batch_shape: the batch shape the index lives in. Required on ``"threefry-legacy"``, whose
        split depends on the number of keys; optional on ``"threefry"`` (then only checked).
      stream: stream for a raw or JAX-typed key; a keyfan key carries its own.

    Returns:
      A single key equal to ``fan_out(key, batch_shape)[index]``; on ``"threefry"``
        ``at(key, (i, j)) == at(at(key, i), j)``.

    Raises:
      ValueError: an index is negative or outside ``batch_shape``, or ``batch_shape`` is missing
        on a size-dependent stream.

    Examples:
      >>> import jax, keyfan as kf
      >>> key = kf.key(0)
      >>> same = jax.random.key_data(kf.at(key, 7)) == jax.random.key_data(kf.fan_out(key, 10)[7])
      >>> bool(same.all())
      True
    """
    arg = check_key("key", key, stream=stream)
    indices = tuple(index) if isinstance(index, (tuple, list)) else (index,)
    if batch_shape is None:
        if arg.stream.size_dependent:
            raise ValueError(
                f"at() on the {arg.stream.name!r} stream needs batch_shape=: its split depends on "
                f"the number of keys, so the key of index {index!r} differs between batch sizes. "
                f"Pass batch_shape=(n, ...) or use the 'threefry' stream."
            )
        sizes: tuple[int | None, ...] = (None,) * len(indices)
    else:
        sizes = arg.stream.check_batch_shape("batch_shape", batch_shape)
        if len(sizes) != len(indices):
            raise ValueError(
                f"index has {len(indices)} coordinate(s) but batch_shape {sizes} has {len(sizes)} axes."
            )
    words = arg.words
    for axis, (i, size) in enumerate(zip(indices, sizes, strict=True)):
        name = "index" if len(indices) == 1 else f"index[{axis}]"
        words = arg.stream.child(words, _scalar_index_words(name, i, size), size)
    return arg.wrap_words(words)


def step(key: KeyLike, t: ArrayLike, *, stream: StreamName | None = None) -> Array:
    """The key of training step ``t``: ``jax.random.fold_in(key, t)``, on every stream.

    Args:
      key: a single key.
      t: a non-negative int (or a traced integer scalar, e.g. the step counter inside a jitted
        train step). Steps at or above ``2**32`` use the counter's high word (``fold_in`` would
        truncate them).
      stream: stream for a raw or JAX-typed key.

    Returns:
      A single key of the same kind as ``key``.

    Raises:
      TypeError: ``key`` is not a single key, or ``t`` is not an integer.
      ValueError: ``t`` is negative or at least ``2**64``.

    Examples:
      >>> import jax, keyfan as kf
      >>> key = kf.key(0)
      >>> bool((jax.random.key_data(kf.step(key, 3)) == jax.random.key_data(jax.random.fold_in(key, 3))).all())
      True
    """
    arg = check_key("key", key, stream=stream)
    return arg.wrap_words(_hash_words(arg.words, _scalar_index_words("t", t, None)))


def named(key: KeyLike, name: str, *, stream: StreamName | None = None) -> Array:
    """A sub-stream derived from a string, e.g. ``named(key, "dropout")``.

    The name is hashed with BLAKE2b to a 64-bit counter (personalised ``"keyfan.named"``), which
    is hashed under ``key``: distinct names collide with probability about ``2**-64`` per pair.
    Derive several names by nesting (``named(named(key, "encoder"), "dropout")``), never by
    concatenating strings, so that ``("AB", "C")`` and ``("A", "BC")`` stay distinct.

    Args:
      key: a single key.
      name: any string (UTF-8 encoded).
      stream: stream for a raw or JAX-typed key.

    Returns:
      A single key of the same kind as ``key``, independent of ``key``'s other named and
        indexed children.

    Raises:
      TypeError: ``key`` is not a single key, or ``name`` is not a string.

    Examples:
      >>> import jax, keyfan as kf
      >>> key = kf.key(0)
      >>> a, b = kf.named(key, "dropout"), kf.named(key, "noise")
      >>> bool((jax.random.key_data(a) != jax.random.key_data(b)).any())
      True
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__} {name!r}.")
    arg = check_key("key", key, stream=stream)
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8, person=b"keyfan.named").digest()
    value = int.from_bytes(digest, "big")
    index = cast(Words, (np.uint32(value >> 32), np.uint32(value & _MASK32)))
    return arg.wrap_words(_hash_words(arg.words, index))


def example_keys(key: KeyLike, ids: ArrayLike, *, step: ArrayLike | None = None,
                 stream: StreamName | None = None) -> Array:
    """Keys from stable example ids (not batch positions), optionally at a training step.

    Example ``id``'s key is ``hash(base; id)`` with ``base = kf.step(key, step)`` (or ``key`` when
    ``step`` is None): on the ``"threefry"`` stream this is ``at(base, id)``, so
    ``example_keys(key, jnp.arange(n)) == fan_out(key, (n,))``. An example's key depends only on
    its id and the step, so shuffling, padding, micro-batching and sharding a dataset never
    change its randomness, and the key of example ``id`` at step ``t`` can be recomputed alone
    with ``example_keys(key, [id], step=t)[0]``.

    Args:
      key: a single key.
      ids: integer array of any shape, non-negative ids below ``2**64`` (64-bit NumPy ids keep
        their high word whatever ``jax_enable_x64`` says). Traced ids are used as given (a
        negative int32 id as its uint32 pattern) and checked to be non-negative under
        ``jax.experimental.checkify.checkify``.
      step: optional step, as in :func:`step`.
      stream: stream for a raw or JAX-typed key.

    Returns:
      Keys of shape ``ids.shape`` (raw keys: ``uint32[*ids.shape, 2]``).

    Raises:
      TypeError: ``key`` is not a single key, or ``ids`` are not integers.
      ValueError: a negative id or one of ``2**64`` or more, or a bad ``step``.

    Examples:
      >>> import jax, jax.numpy as jnp, keyfan as kf
      >>> key = kf.key(0)
      >>> keys = kf.example_keys(key, jnp.array([17, 3, 42]), step=5)
      >>> alone = kf.example_keys(key, jnp.array([42]), step=5)[0]
      >>> bool((jax.random.key_data(keys[2]) == jax.random.key_data(alone)).all())
      True
    """
    arg = check_key("key", key, stream=stream)
    words = arg.words
    if step is not None:
        words = _hash_words(words, _scalar_index_words("step", step, None))
    hi, lo = _ids_words("ids", ids)
    return arg.wrap_words(_hash_words(words, (hi, lo)))

