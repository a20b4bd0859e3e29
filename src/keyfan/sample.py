"""Fast per-example samplers: one call, one key per example, the canonical bits.

Every sampler here draws a batch of independent per-example samples from ONE key::

    kf.normal(key, batch=(N,), shape=(n,))
    == jax.vmap(lambda k: jax.random.normal(k, (n,)))(kf.fan_out(key, (N,)))   # bit for bit

on the key's stream, and for a nested batch ``(a, b)`` the same with two nested ``vmap`` over
``kf.fan_out(key, (a, b))``. Row ``i`` is the unbatched draw with ``kf.at(key, i)``, so (on the
``"threefry"`` stream) it does not depend on the batch size, on ``chunk_size``, on ``offset``
blocks, on sharding, or on ``jit``. The split and the draw are fused into one elementwise
program over a flat index (see ``keyfan._kernel``): at ``N = 10**6`` it runs several times
faster than the canonical ``split`` + ``vmap``.

Every argument after the key is keyword-only: ``kf.normal(key, (4, 3))`` is a ``TypeError`` that
shows both meanings (``jax.random.normal(key, (4, 3))`` is ONE draw of shape ``(4, 3)``, which
``kf.normal(key, batch=(), shape=(4, 3))`` gives bit for bit; ``batch=(4,), shape=(3,)`` is four
examples of shape ``(3,)``).

Common arguments:
  key: a single key (``kf.key(seed)``, ``jax.random.key(seed)`` or raw ``PRNGKey`` data).
  batch: the batch shape, an int or tuple (each axis below ``2**32``; ``()`` for one draw).
  shape: the per-example shape of one draw.
  offset: index of the first row on batch axis 0, to compute block ``[offset, offset + N)`` of
    a larger virtual batch (``"threefry"`` only): streaming generation in pieces.
  chunk_size: compute this many rows of batch axis 0 at a time (bounded working memory); the
    bits are identical.
  sharding: a ``jax.sharding.NamedSharding`` for the result; batch axes may be sharded over
    mesh axes (sizes divisible by the shard counts), per-example axes may not. Each device
    computes its own rows, with no communication.
  stream: the stream for a raw or JAX-typed key (default ``"threefry"``).
  portable: ``True`` for values with the same bits on every CPU instruction set and GPU
    (``keyfan._portable``: float32 arithmetic that fused multiply-adds cannot change); they are
    not JAX's values. ``False`` (default): exactly JAX's values, whose floats follow the CPU.
    Integer and boolean samplers are the same everywhere either way.

Parameters such as ``minval`` or ``p`` broadcast against ``(*batch, *shape)``: a scalar is
shared, an array with batch axes gives per-example parameters (the canonical equivalent maps
them alongside the keys).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Literal, ParamSpec, TypeVar, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.sharding import NamedSharding
from jax.typing import ArrayLike, DTypeLike

from keyfan import _kernel, _portable_poisson
from keyfan._checks import as_int, as_shape, check_fits_memory, is_traced, x64_enabled
from keyfan._keyarg import KeyArg, check_key
from keyfan._values import (
    Bernoulli,
    Bits,
    Gumbel,
    Normal,
    RandInt,
    TruncatedNormal,
    Uniform,
    UniformBits,
    check_portable,
    gumbel_low_from_bits,
)
from keyfan.keys import fan_out
from keyfan.typing import KeyLike, ShapeLike, StreamName

__all__ = [
    "bernoulli",
    "bits",
    "categorical",
    "gumbel",
    "normal",
    "poisson",
    "randint",
    "truncated_normal",
    "uniform",
]


# -- Argument checks ---------------------------------------------------------------------------

def _dtype(name: str, dtype: Any, default: Any, kind: str) -> np.dtype:
    """A dtype of ``kind`` ("float", "inexact", "int" or "uint"); 64-bit ones need x64."""
    try:
        dt: np.dtype = np.dtype(default if dtype is None else dtype)
    except TypeError as err:
        raise TypeError(f"{name} must be a dtype, got {dtype!r}.") from err
    ok = {
        "float": jnp.issubdtype(dt, jnp.floating),
        "inexact": jnp.issubdtype(dt, jnp.inexact),
        "int": jnp.issubdtype(dt, jnp.integer) and dt != np.bool_,
        "uint": jnp.issubdtype(dt, jnp.unsignedinteger),
    }[kind]
    if not ok:
        words = {"float": "a floating", "inexact": "a floating or complex", "int": "an integer",
                 "uint": "an unsigned integer"}[kind]
        raise TypeError(f"{name} must be {words} dtype, got {dt}.")
    if dt.itemsize * (1 if not jnp.issubdtype(dt, jnp.complexfloating) else 0.5) > 4 \
            and not x64_enabled():
        raise ValueError(
            f"{name}={dt} needs jax.config.update('jax_enable_x64', True); without it JAX would "
            f"silently compute in 32 bits."
        )
    return dt


Mode = Literal["low", "high"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _keywords_after_key(sampler: Callable[_P, _R]) -> Callable[_P, _R]:
    """``sampler`` with a teaching ``TypeError`` for a positional argument after the key.

    ``jax.random.normal(key, (4, 3))`` reads ``(4, 3)`` as the shape of one draw; keyfan's
    samplers also take a batch shape, so a positional shape would be ambiguous. They take
    everything after the key by keyword, and this guard says so with both readings spelled out
    (instead of Python's bare "takes 1 positional argument").
    """

    @functools.wraps(sampler)
    def checked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if len(args) > 1:
            name = sampler.__name__
            shown = ", ".join(f"{a!r:.40}" for a in args[1:])
            raise TypeError(
                f"kf.{name} takes every argument after the key by keyword, so that a shape cannot be read "
                f"as a batch; got {len(args) - 1} positional argument(s) after the key: {shown}. Write "
                f"kf.{name}(key, batch=..., shape=...): batch= is the batch of examples (one key each, "
                f"batch=() for a single draw), shape= the shape of each example's draw. For instance "
                f"kf.{name}(key, batch=(), shape=(4, 3)) is the one draw jax.random.{name}(key, (4, 3)) "
                f"gives, and kf.{name}(key, batch=(4,), shape=(3,)) four examples of shape (3,)."
            )
        return sampler(*args, **kwargs)

    return checked


def _mode(mode: object) -> Mode:
    """The Bernoulli/Gumbel ``mode``: ``"low"`` or ``"high"`` (JAX's two draws), else ``ValueError``."""
    if mode not in ("low", "high"):
        raise ValueError(f"mode must be 'low' or 'high', got {mode!r}.")
    return "low" if mode == "low" else "high"


def _float_bits(dt: np.dtype) -> int:
    """The bits JAX draws per value of float dtype ``dt`` (8 for the sub-8-bit-mantissa floats)."""
    info = jnp.finfo(dt)  # type: ignore[no-untyped-call]  # ml_dtypes' finfo, for bfloat16 too
    return 8 if info.nmant < 8 else int(info.bits)


def _portable_mode(portable: object, dtype: np.dtype, mode: Mode) -> bool:
    """``portable`` checked for a Gumbel-based sampler: portable draws have no ``"high"`` mode."""
    checked = check_portable(portable, dtype)
    if checked and mode != "low":
        raise ValueError("portable=True draws Gumbel values in mode 'low' only (from one word per value, "
                         "never 0 or 1, |g| < 17); got mode='high'. Use mode='low', or portable=False.")
    return checked


def _named_sharding(sharding: object) -> NamedSharding | None:
    """``sharding`` if it is None or a ``NamedSharding``, else a ``TypeError``."""
    if sharding is not None and not isinstance(sharding, NamedSharding):
        raise TypeError(f"sharding must be a jax.sharding.NamedSharding, got {type(sharding).__name__}.")
    return sharding


class _Draw:
    """The checked common arguments of one sampler call."""

    def __init__(self, key: Any, batch: Any, shape: Any, *, offset: Any, chunk_size: Any,
                 sharding: Any, stream: str | None):
        self.key: KeyArg = check_key("key", key, stream=stream)
        self.batch = self.key.stream.check_batch_shape("batch", batch)
        self.shape = as_shape("shape", shape)
        check_fits_memory("the result of (*batch, *shape) =", self.batch + self.shape, 1,
                          "draw it in pieces with offset= (each a block of rows of the same virtual batch, "
                          "same bits) and consume each piece before the next.")
        self.offset = as_int("offset", offset, lo=0, hi=2**64)
        if self.offset:
            if not self.batch:
                raise ValueError("offset needs a batch axis to offset; got batch=().")
            if self.key.stream.size_dependent:
                raise ValueError(
                    f"offset is not available on the {self.key.stream.name!r} stream, whose keys "
                    f"depend on the full batch size; draw the whole batch (with chunk_size= to "
                    f"bound memory) or use the 'threefry' stream."
                )
            if self.offset + self.batch[0] > 2**64:
                raise ValueError(f"offset + batch[0] must be at most 2**64, got {self.offset} + {self.batch[0]}.")
        self.chunk_size = None if chunk_size is None else as_int("chunk_size", chunk_size, lo=1)
        if self.chunk_size is not None and not self.batch:
            raise ValueError("chunk_size needs a batch axis to chunk; got batch=().")
        self.sharding = self._check_sharding(sharding)

    def _check_sharding(self, value: NamedSharding | None) -> NamedSharding | None:
        sharding = _named_sharding(value)
        if sharding is None:
            return None
        spec = tuple(sharding.spec)
        rank = len(self.batch) + len(self.shape)
        if len(spec) > rank:
            raise ValueError(f"sharding spec {sharding.spec} has {len(spec)} entries for a result of rank {rank}.")
        for axis, entry in enumerate(spec):
            names = _kernel.mesh_axes(entry)
            if not names:
                continue
            if axis >= len(self.batch):
                raise ValueError(
                    f"sharding spec {sharding.spec} shards per-example axis {axis - len(self.batch)} "
                    f"of shape {self.shape}; only batch axes can be sharded."
                )
            unknown = [n for n in names if n not in sharding.mesh.shape]
            if unknown:
                raise ValueError(f"sharding spec names mesh axes {unknown} not in mesh {dict(sharding.mesh.shape)}.")
            shards = math.prod(sharding.mesh.shape[n] for n in names)
            if self.batch[axis] % shards:
                raise ValueError(
                    f"batch axis {axis} has size {self.batch[axis]}, not divisible by the {shards} "
                    f"shards of mesh axes {names}."
                )
        return sharding

    @property
    def full_shape(self) -> tuple[int, ...]:
        return self.batch + self.shape

    def param(self, name: str, value: Any, dtype: Any = None) -> Array:
        """A parameter as an array of full rank, broadcastable to ``(*batch, *shape)``."""
        try:
            array = jnp.asarray(value) if dtype is None else jnp.asarray(value, dtype)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a number or an array, got {type(value).__name__} {value!r}.") from err
        full = self.full_shape
        try:
            broadcast = np.broadcast_shapes(array.shape, full)
        except ValueError:
            broadcast = None
        if broadcast != full:
            raise ValueError(
                f"{name} of shape {array.shape} must broadcast to (*batch, *shape) = {full}."
            )
        return array.reshape((1,) * (len(full) - array.ndim) + array.shape)

    def check_size(self, draw_size: int, bit_width: int) -> None:
        self.key.stream.check_draw_size(draw_size, bit_width)

    def run(self, transform: Any, params: tuple[Array, ...] = (), event_shape: tuple[int, ...] | None = None) -> Array:
        return _kernel.draw(self.key.stream, self.key.value, transform, self.batch,
                            self.shape if event_shape is None else event_shape, params,
                            offset=self.offset, chunk_size=self.chunk_size, sharding=self.sharding)


def _check_values(rule: str, ok: Callable[[], ArrayLike], **arrays: ArrayLike) -> None:
    """Raises ``ValueError`` if concrete parameter values break ``rule`` (``ok()`` is False);
    traced values cannot be checked and pass (inside ``jit`` even a concrete array's check is traced)."""
    if any(is_traced(a) for a in arrays.values()):
        return
    result = ok()
    if is_traced(result):
        return
    if not bool(result):
        shown = ", ".join(f"{name}={np.asarray(a).tolist() if np.size(a) <= 8 else '[...]'}"
                          for name, a in arrays.items())
        raise ValueError(f"{rule}; got {shown}.")


def _common(key: KeyLike, batch: ShapeLike, shape: ShapeLike, offset: int, chunk_size: int | None,
            sharding: NamedSharding | None, stream: StreamName | None) -> _Draw:
    return _Draw(key, batch, shape, offset=offset, chunk_size=chunk_size, sharding=sharding,
                 stream=stream)


# -- Samplers ------------------------------------------------------------------------------------

@_keywords_after_key
def bits(key: KeyLike, *, batch: ShapeLike, shape: ShapeLike = (), dtype: DTypeLike | None = None,
         offset: int = 0, chunk_size: int | None = None,
         sharding: NamedSharding | None = None, stream: StreamName | None = None,
         portable: bool = False) -> Array:
    """Per-example raw bits: ``vmap(lambda k: jax.random.bits(k, shape, dtype))(kf.fan_out(key, batch))``.

    Row ``i`` is the unbatched draw with ``kf.at(key, i)``, bit for bit, eager and under ``jit``;
    on ``"threefry"`` it does not depend on the batch size, ``chunk_size``, ``offset`` or
    ``sharding``.

    Args:
      key: a single key.
      batch: the batch shape: one key per coordinate, ``kf.fan_out(key, batch)``; an int or a
        sequence of ints, each below ``2**32`` (``2**31`` on ``"threefry-legacy"``); ``()`` for
        one draw from ``key`` itself.
      shape: the shape of each example's draw, as ``shape`` in ``jax.random``.
      dtype: ``uint8``, ``uint16``, ``uint32`` (default, whatever ``jax_enable_x64`` says) or
        ``uint64`` (needs x64).
      offset: index of the first row on batch axis 0: block ``[offset, offset + batch[0])`` of a
        larger virtual batch, with its bits (``"threefry"`` only).
      chunk_size: rows of batch axis 0 computed at a time (bounded working memory), same bits.
      sharding: a ``jax.sharding.NamedSharding`` for the result; only batch axes may be sharded,
        each over mesh axes that divide its size. Each device computes its own rows.
      stream: the stream for a raw or JAX-typed key (default ``"threefry"``); a keyfan key carries
        its own, and a different ``stream=`` is a ``ValueError``.
      portable: accepted for symmetry with the float samplers; the values are the same on every
        CPU and GPU either way (exact integer arithmetic and comparisons).

    Returns:
      An unsigned integer array of shape ``(*batch, *shape)`` and dtype ``dtype``.

    Raises:
      TypeError: a positional argument after ``key``, a ``key`` that is not a key, or an argument
        of the wrong type (each error names it).
      ValueError: a negative or too large ``batch``/``shape`` axis, a result too large for memory,
        ``offset``/``chunk_size``/``sharding`` that do not fit ``batch``, or a ``stream=`` that
        disagrees with the key.

    Examples:
      >>> import jax, keyfan as kf
      >>> key = kf.key(0)
      >>> words = kf.bits(key, batch=(4,), shape=(2,))
      >>> words.shape, words.dtype
      ((4, 2), dtype('uint32'))
      >>> bool((words[3] == jax.random.bits(kf.at(key, 3), (2,))).all())
      True
    """
    d = _common(key, batch, shape, offset, chunk_size, sharding, stream)
    dt = _dtype("dtype", dtype, np.uint32, "uint")
    check_portable(portable)  # raw bits are the same everywhere
    d.check_size(math.prod(d.shape), dt.itemsize * 8)
    return d.run(Bits(dt))


@_keywords_after_key
def uniform(key: KeyLike, *, batch: ShapeLike, shape: ShapeLike = (), dtype: DTypeLike | None = None,
            minval: ArrayLike = 0.0, maxval: ArrayLike = 1.0, offset: int = 0, chunk_size: int | None = None,
            sharding: NamedSharding | None = None, stream: StreamName | None = None,
            portable: bool = False) -> Array:
    """Per-example uniform floats in ``[minval, maxval)``, as ``jax.random.uniform`` per example.

    Row ``i`` is the unbatched draw with ``kf.at(key, i)``, bit for bit, eager and under ``jit``;
    on ``"threefry"`` it does not depend on the batch size, ``chunk_size``, ``offset`` or
    ``sharding``.

    Args:
      key: a single key.
      batch: the batch shape: one key per coordinate, ``kf.fan_out(key, batch)``; an int or a
        sequence of ints, each below ``2**32`` (``2**31`` on ``"threefry-legacy"``); ``()`` for
        one draw from ``key`` itself.
      shape: the shape of each example's draw, as ``shape`` in ``jax.random``.
      dtype: a float dtype (default ``float32``; ``float64`` needs x64).
      minval: lower bound, broadcastable to ``(*batch, *shape)`` (per-example bounds allowed).
      maxval: upper bound, likewise; finite, with ``minval <= maxval``.
      offset: index of the first row on batch axis 0: block ``[offset, offset + batch[0])`` of a
        larger virtual batch, with its bits (``"threefry"`` only).
      chunk_size: rows of batch axis 0 computed at a time (bounded working memory), same bits.
      sharding: a ``jax.sharding.NamedSharding`` for the result; only batch axes may be sharded,
        each over mesh axes that divide its size. Each device computes its own rows.
      stream: the stream for a raw or JAX-typed key (default ``"threefry"``); a keyfan key carries
        its own, and a different ``stream=`` is a ``ValueError``.
      portable: ``True`` for float32 values with the same bits on every CPU instruction set and GPU
        (float16/bfloat16: those values rounded), not JAX's: see docs/guides/reproducibility.md.
        ``False`` (default): JAX's values, whose last bits follow the CPU.

    Returns:
      A float array of shape ``(*batch, *shape)`` and dtype ``dtype``.

    Raises:
      TypeError: a positional argument after ``key``, a ``key`` that is not a key, or an argument
        of the wrong type (each error names it).
      ValueError: a negative or too large ``batch``/``shape`` axis, a result too large for memory,
        ``offset``/``chunk_size``/``sharding`` that do not fit ``batch``, or a ``stream=`` that
        disagrees with the key.
        Also: ``minval``/``maxval`` not finite or ``minval > maxval``.

    Examples:
      >>> import jax, keyfan as kf
      >>> key = kf.key(0)
      >>> u = kf.uniform(key, batch=(5,), shape=(2,), minval=-1.0, maxval=1.0)
      >>> bool((u[4] == jax.random.uniform(kf.at(key, 4), (2,), minval=-1.0, maxval=1.0)).all())
      True
    """
    d = _common(key, batch, shape, offset, chunk_size, sharding, stream)
    dt = _dtype("dtype", dtype, np.float32, "float")
    portable = check_portable(portable, dt)
    d.check_size(math.prod(d.shape), 32 if portable else _float_bits(dt))
    lo, hi = d.param("minval", minval, dt), d.param("maxval", maxval, dt)
    _check_values("minval and maxval must be finite with minval <= maxval",
                  lambda: jnp.isfinite(lo).all() & jnp.isfinite(hi).all() & (lo <= hi).all(), minval=lo, maxval=hi)
    return d.run(Uniform(dt, portable), (lo, hi))


@_keywords_after_key
def normal(key: KeyLike, *, batch: ShapeLike, shape: ShapeLike = (), dtype: DTypeLike | None = None,
           offset: int = 0, chunk_size: int | None = None,
           sharding: NamedSharding | None = None, stream: StreamName | None = None,
           portable: bool = False) -> Array:
    """Per-example standard normals, as ``jax.random.normal`` per example.

    Row ``i`` is the unbatched draw with ``kf.at(key, i)``, bit for bit, eager and under ``jit``;
    on ``"threefry"`` it does not depend on the batch size, ``chunk_size``, ``offset`` or
    ``sharding``.

    Args:
      key: a single key.
      batch: the batch shape: one key per coordinate, ``kf.fan_out(key, batch)``; an int or a
        sequence of ints, each below ``2**32`` (``2**31`` on ``"threefry-legacy"``); ``()`` for
        one draw from ``key`` itself.
      shape: the shape of each example's draw, as ``shape`` in ``jax.random``.
      dtype: a float or complex dtype (default ``float32``; 64-bit ones need x64).
      offset: index of the first row on batch axis 0: block ``[offset, offset + batch[0])`` of a
        larger virtual batch, with its bits (``"threefry"`` only).
      chunk_size: rows of batch axis 0 computed at a time (bounded working memory), same bits.
      sharding: a ``jax.sharding.NamedSharding`` for the result; only batch axes may be sharded,
        each over mesh axes that divide its size. Each device computes its own rows.
      stream: the stream for a raw or JAX-typed key (default ``"threefry"``); a keyfan key carries
        its own, and a different ``stream=`` is a ``ValueError``.
      portable: ``True`` for float32 values with the same bits on every CPU instruction set and GPU
        (float16/bfloat16: those values rounded), not JAX's: see docs/guides/reproducibility.md.
        ``False`` (default): JAX's values, whose last bits follow the CPU.

    Returns:
      An array of shape ``(*batch, *shape)`` and dtype ``dtype``.

    Raises:
      TypeError: a positional argument after ``key``, a ``key`` that is not a key, or an argument
        of the wrong type (each error names it).
      ValueError: a negative or too large ``batch``/``shape`` axis, a result too large for memory,
        ``offset``/``chunk_size``/``sharding`` that do not fit ``batch``, or a ``stream=`` that
        disagrees with the key.

    Examples:
      >>> import jax, keyfan as kf
      >>> key = kf.key(0)
      >>> x = kf.normal(key, batch=(1000,), shape=(3,))
      >>> canonical = jax.vmap(lambda k: jax.random.normal(k, (3,)))(kf.fan_out(key, (1000,)))
      >>> bool((x == canonical).all())
      True
    """
    d = _common(key, batch, shape, offset, chunk_size, sharding, stream)
    dt = _dtype("dtype", dtype, np.float32, "inexact")
    portable = check_portable(portable, dt, complex_ok=True)
    real = np.array(0, dt).real.dtype
    d.check_size(math.prod(d.shape), 32 if portable else _float_bits(real))
    return d.run(Normal(dt, portable))


@_keywords_after_key
def bernoulli(key: KeyLike, *, batch: ShapeLike, shape: ShapeLike = (), p: ArrayLike = 0.5,
              mode: Mode = "low", offset: int = 0, chunk_size: int | None = None,
              sharding: NamedSharding | None = None, stream: StreamName | None = None,
              portable: bool = False) -> Array:
    """Per-example Bernoulli draws, as ``jax.random.bernoulli(k, p, shape, mode)`` per example.

    Row ``i`` is the unbatched draw with ``kf.at(key, i)``, bit for bit, eager and under ``jit``;
    on ``"threefry"`` it does not depend on the batch size, ``chunk_size``, ``offset`` or
    ``sharding``.

    Args:
      key: a single key.
      batch: the batch shape: one key per coordinate, ``kf.fan_out(key, batch)``; an int or a
        sequence of ints, each below ``2**32`` (``2**31`` on ``"threefry-legacy"``); ``()`` for
        one draw from ``key`` itself.
      shape: the shape of each example's draw, as ``shape`` in ``jax.random``.
      p: probability of ``True``, a float or float array broadcastable to ``(*batch, *shape)``;
        its dtype sets the precision of the comparison (a Python float means float32).
      mode: ``"low"`` (default) or ``"high"`` (twice the bits, correct for ``p`` below ~1e-7).
      offset: index of the first row on batch axis 0: block ``[offset, offset + batch[0])`` of a
        larger virtual batch, with its bits (``"threefry"`` only).
      chunk_size: rows of batch axis 0 computed at a time (bounded working memory), same bits.
      sharding: a ``jax.sharding.NamedSharding`` for the result; only batch axes may be sharded,
        each over mesh axes that divide its size. Each device computes its own rows.
      stream: the stream for a raw or JAX-typed key (default ``"threefry"``); a keyfan key carries
        its own, and a different ``stream=`` is a ``ValueError``.
      portable: accepted for symmetry with the float samplers; the values are the same on every
        CPU and GPU either way (exact integer arithmetic and comparisons).

    Returns:
      A boolean array of shape ``(*batch, *shape)``.

    Raises:
      TypeError: a positional argument after ``key``, a ``key`` that is not a key, or an argument
        of the wrong type (each error names it).
      ValueError: a negative or too large ``batch``/``shape`` axis, a result too large for memory,
        ``offset``/``chunk_size``/``sharding`` that do not fit ``batch``, or a ``stream=`` that
        disagrees with the key.
        Also: ``p`` outside ``[0, 1]``, or a ``mode`` other than ``"low"``/``"high"``.

    Examples:
      >>> import jax, keyfan as kf
      >>> key = kf.key(0)
      >>> mask = kf.bernoulli(key, batch=(8,), shape=(4,), p=0.25)
      >>> bool((mask[2] == jax.random.bernoulli(kf.at(key, 2), 0.25, (4,))).all())
      True
    """
    d = _common(key, batch, shape, offset, chunk_size, sharding, stream)
    mode = _mode(mode)
    check_portable(portable)  # comparisons of exact uniforms with p: the same everywhere
    p_array = jnp.asarray(p)
    if not jnp.issubdtype(p_array.dtype, jnp.floating):
        raise TypeError(f"p must have a floating dtype, got {p_array.dtype}; write p=1.0 rather than p=1.")
    n = math.prod(d.shape)
    dt = np.dtype(p_array.dtype)
    d.check_size(2 * n if mode == "high" else n, _float_bits(dt))
    p_array = d.param("p", p_array)
    _check_values("p must be a probability in [0, 1]", lambda: ((p_array >= 0) & (p_array <= 1)).all(), p=p_array)
    return d.run(Bernoulli(dt, mode, n), (p_array,))


def _int_bound(name: str, value: Any, dtype: np.dtype) -> Array:
    """An integer bound as an array; a Python int that JAX's integers cannot hold (JAX raises a
    bare ``OverflowError``) is a ``ValueError`` naming the bound and the remedy. Bounds outside
    ``dtype``'s range are clipped to it, as ``jax.random.randint`` does."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer or integer array, got bool {value!r}.")
    widest = np.iinfo(np.int64 if x64_enabled() else np.int32)
    if isinstance(value, (int, np.integer)) and not widest.min <= int(value) <= widest.max:
        raise ValueError(
            f"{name}={int(value)} does not fit JAX's integers, [{widest.min}, {widest.max}]"
            f"{'' if x64_enabled() else ' without jax_enable_x64'}; draw {dtype} values "
            f"with bounds inside that range.")
    try:
        array = jnp.asarray(value)
    except (OverflowError, TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an integer or integer array, got {type(value).__name__} "
                        f"{value!r:.60}.") from err
    if not jnp.issubdtype(array.dtype, jnp.integer) or array.dtype == jnp.bool_:
        raise TypeError(f"{name} must be an integer or integer array, got dtype {array.dtype}.")
    return array


@_keywords_after_key
def randint(key: KeyLike, *, batch: ShapeLike, shape: ShapeLike = (), dtype: DTypeLike | None = None,
            minval: ArrayLike, maxval: ArrayLike, offset: int = 0, chunk_size: int | None = None,
            sharding: NamedSharding | None = None, stream: StreamName | None = None,
            portable: bool = False) -> Array:
    """Per-example integers in ``[minval, maxval)``, as ``jax.random.randint`` per example.

    Row ``i`` is the unbatched draw with ``kf.at(key, i)``, bit for bit, eager and under ``jit``;
    on ``"threefry"`` it does not depend on the batch size, ``chunk_size``, ``offset`` or
    ``sharding``.

    Args:
      key: a single key.
      batch: the batch shape: one key per coordinate, ``kf.fan_out(key, batch)``; an int or a
        sequence of ints, each below ``2**32`` (``2**31`` on ``"threefry-legacy"``); ``()`` for
        one draw from ``key`` itself.
      shape: the shape of each example's draw, as ``shape`` in ``jax.random``.
      dtype: an integer dtype (default ``int32``; 64-bit ones need x64). 8- and 16-bit dtypes
        are sampled in int32 and cast, as JAX does.
      minval: integer lower bound (inclusive), broadcastable to ``(*batch, *shape)``.
      maxval: integer upper bound (exclusive), likewise, with ``minval < maxval`` (checked for
        concrete values: ``jax.random.randint`` returns ``minval`` for an empty range; traced
        bounds cannot be checked and behave as in JAX).
      offset: index of the first row on batch axis 0: block ``[offset, offset + batch[0])`` of a
        larger virtual batch, with its bits (``"threefry"`` only).
      chunk_size: rows of batch axis 0 computed at a time (bounded working memory), same bits.
      sharding: a ``jax.sharding.NamedSharding`` for the result; only batch axes may be sharded,
        each over mesh axes that divide its size. Each device computes its own rows.
      stream: the stream for a raw or JAX-typed key (default ``"threefry"``); a keyfan key carries
        its own, and a different ``stream=`` is a ``ValueError``.
      portable: accepted for symmetry with the float samplers; the values are the same on every
        CPU and GPU either way (exact integer arithmetic and comparisons).

    Returns:
      An integer array of shape ``(*batch, *shape)`` and dtype ``dtype``.

    Raises:
      TypeError: a positional argument after ``key``, a ``key`` that is not a key, or an argument
        of the wrong type (each error names it).
      ValueError: a negative or too large ``batch``/``shape`` axis, a result too large for memory,
        ``offset``/``chunk_size``/``sharding`` that do not fit ``batch``, or a ``stream=`` that
        disagrees with the key.
        Also: an empty range, or a bound that JAX's integers cannot hold.

    Examples:
      >>> import jax, keyfan as kf
      >>> key = kf.key(0)
      >>> idx = kf.randint(key, batch=(6,), minval=0, maxval=10)
      >>> int(idx[5]) == int(jax.random.randint(kf.at(key, 5), (), 0, 10))
      True
    """
    d = _common(key, batch, shape, offset, chunk_size, sharding, stream)
    dt = _dtype("dtype", dtype, np.int32, "int")
    check_portable(portable)  # integer arithmetic: the same everywhere
    info = np.iinfo(dt)
    bounds = []
    for name, value in (("minval", minval), ("maxval", maxval)):
        array = _int_bound(name, value, dt)
        bounds.append(d.param(name, array))
    lo, hi = bounds
    _check_values(f"minval must be less than maxval (the range [minval, maxval) must hold at least one {dt} "
                  f"value; jax.random.randint would return minval)",
                  lambda: (lo < hi).all(), minval=lo, maxval=hi)
    sample_dt = dt
    if info.bits < 32:
        sample_dt = np.dtype(np.int32)
        lo = lo.astype("int32").clip(int(info.min), int(info.max))
        hi = hi.astype("int32").clip(int(info.min), int(info.max) + 1)
    d.check_size(math.prod(d.shape), np.iinfo(sample_dt).bits)
    out = d.run(RandInt(sample_dt), (lo, hi))
    return out.astype(dt)


@_keywords_after_key
def truncated_normal(key: KeyLike, *, batch: ShapeLike, shape: ShapeLike = (), dtype: DTypeLike | None = None,
                     lower: ArrayLike, upper: ArrayLike, offset: int = 0, chunk_size: int | None = None,
                     sharding: NamedSharding | None = None, stream: StreamName | None = None,
                     portable: bool = False) -> Array:
    """Per-example normals truncated to ``(lower, upper)``, as ``jax.random.truncated_normal``.

    Row ``i`` is the unbatched draw with ``kf.at(key, i)``, bit for bit, eager and under ``jit``;
    on ``"threefry"`` it does not depend on the batch size, ``chunk_size``, ``offset`` or
    ``sharding``.

    Args:
      key: a single key.
      batch: the batch shape: one key per coordinate, ``kf.fan_out(key, batch)``; an int or a
        sequence of ints, each below ``2**32`` (``2**31`` on ``"threefry-legacy"``); ``()`` for
        one draw from ``key`` itself.
      shape: the shape of each example's draw, as ``shape`` in ``jax.random``.
      dtype: a float dtype (default ``float32``).
      lower: lower bound, broadcastable to ``(*batch, *shape)`` (may be ``-inf``).
      upper: upper bound, likewise (may be ``inf``), with ``lower < upper``.
      offset: index of the first row on batch axis 0: block ``[offset, offset + batch[0])`` of a
        larger virtual batch, with its bits (``"threefry"`` only).
      chunk_size: rows of batch axis 0 computed at a time (bounded working memory), same bits.
      sharding: a ``jax.sharding.NamedSharding`` for the result; only batch axes may be sharded,
        each over mesh axes that divide its size. Each device computes its own rows.
      stream: the stream for a raw or JAX-typed key (default ``"threefry"``); a keyfan key carries
        its own, and a different ``stream=`` is a ``ValueError``.
      portable: ``True`` for float32 values with the same bits on every CPU instruction set and GPU
        (float16/bfloat16: those values rounded), not JAX's: see docs/guides/reproducibility.md.
        ``False`` (default): JAX's values, whose last bits follow the CPU.

    Returns:
      A float array of shape ``(*batch, *shape)`` with values in the open interval ``(lower, upper)``.

    Raises:
      TypeError: a positional argument after ``key``, a ``key`` that is not a key, or an argument
        of the wrong type (each error names it).
      ValueError: a negative or too large ``batch``/``shape`` axis, a result too large for memory,
        ``offset``/``chunk_size``/``sharding`` that do not fit ``batch``, or a ``stream=`` that
        disagrees with the key.
        Also: ``lower >= upper`` or a NaN bound.

    Examples:
      >>> import jax, keyfan as kf
      >>> key = kf.key(0)
      >>> t = kf.truncated_normal(key, batch=(3,), lower=-1.0, upper=1.0)
      >>> bool(t[1] == jax.random.truncated_normal(kf.at(key, 1), -1.0, 1.0))
      True
    """
    d = _common(key, batch, shape, offset, chunk_size, sharding, stream)
    dt = _dtype("dtype", dtype, np.float32, "float")
    portable = check_portable(portable, dt)
    d.check_size(math.prod(d.shape), 32 if portable else _float_bits(dt))
    lo, hi = d.param("lower", lower, dt), d.param("upper", upper, dt)
    _check_values("lower must be less than upper (either may be infinite, neither NaN)",
                  lambda: (lo < hi).all(), lower=lo, upper=hi)
    step = TruncatedNormal(dt, portable)
    return d.run(step, step.params(lo, hi))


@_keywords_after_key
def gumbel(key: KeyLike, *, batch: ShapeLike, shape: ShapeLike = (), dtype: DTypeLike | None = None,
           mode: Mode = "low", offset: int = 0, chunk_size: int | None = None,
           sharding: NamedSharding | None = None, stream: StreamName | None = None,
           portable: bool = False) -> Array:
    """Per-example standard Gumbel draws, as ``jax.random.gumbel(k, shape, dtype, mode)``.

    Row ``i`` is the unbatched draw with ``kf.at(key, i)``, bit for bit, eager and under ``jit``;
    on ``"threefry"`` it does not depend on the batch size, ``chunk_size``, ``offset`` or
    ``sharding``.

    Args:
      key: a single key.
      batch: the batch shape: one key per coordinate, ``kf.fan_out(key, batch)``; an int or a
        sequence of ints, each below ``2**32`` (``2**31`` on ``"threefry-legacy"``); ``()`` for
        one draw from ``key`` itself.
      shape: the shape of each example's draw, as ``shape`` in ``jax.random``.
      dtype: a float dtype (default ``float32``).
      mode: ``"low"`` (default, pinned whatever JAX's ``jax_use_high_dynamic_range_gumbel`` flag
        says) or ``"high"`` for the high-range draw.
      offset: index of the first row on batch axis 0: block ``[offset, offset + batch[0])`` of a
        larger virtual batch, with its bits (``"threefry"`` only).
      chunk_size: rows of batch axis 0 computed at a time (bounded working memory), same bits.
      sharding: a ``jax.sharding.NamedSharding`` for the result; only batch axes may be sharded,
        each over mesh axes that divide its size. Each device computes its own rows.
      stream: the stream for a raw or JAX-typed key (default ``"threefry"``); a keyfan key carries
        its own, and a different ``stream=`` is a ``ValueError``.
      portable: ``True`` for float32 values with the same bits on every CPU instruction set and GPU
        (float16/bfloat16: those values rounded), not JAX's: see docs/guides/reproducibility.md.
        ``False`` (default): JAX's values, whose last bits follow the CPU.

    Returns:
      A float array of shape ``(*batch, *shape)`` and dtype ``dtype``.

    Raises:
      TypeError: a positional argument after ``key``, a ``key`` that is not a key, or an argument
        of the wrong type (each error names it).
      ValueError: a negative or too large ``batch``/``shape`` axis, a result too large for memory,
        ``offset``/``chunk_size``/``sharding`` that do not fit ``batch``, or a ``stream=`` that
        disagrees with the key.
        Also: a ``mode`` other than ``"low"``/``"high"``.

    Examples:
      >>> import jax, keyfan as kf
      >>> key = kf.key(0)
      >>> g = kf.gumbel(key, batch=(4,), shape=(2,))
      >>> bool((g[0] == jax.random.gumbel(kf.at(key, 0), (2,), mode="low")).all())
      True
    """
    d = _common(key, batch, shape, offset, chunk_size, sharding, stream)
    dt = _dtype("dtype", dtype, np.float32, "float")
    mode = _mode(mode)
    portable = _portable_mode(portable, dt, mode)
    n = math.prod(d.shape)
    d.check_size(2 * n if mode == "high" else n, 32 if portable else _float_bits(dt))
    return d.run(Gumbel(dt, mode, n, portable))


@_keywords_after_key
def categorical(key: KeyLike, *, batch: ShapeLike, logits: ArrayLike, axis: int = -1,
                shape: ShapeLike | None = None, mode: Mode = "low", batched_logits: bool = False,
                offset: int = 0, chunk_size: int | None = None,
                sharding: NamedSharding | None = None, stream: StreamName | None = None,
                portable: bool = False) -> Array:
    """Per-example categorical draws, as ``jax.random.categorical(k, logits, axis, shape)``.

    Row ``i`` is the unbatched draw with ``kf.at(key, i)``, bit for bit, eager and under ``jit``;
    on ``"threefry"`` it does not depend on the batch size, ``chunk_size``, ``offset`` or
    ``sharding``.

    Args:
      key: a single key.
      batch: the batch shape: one key per coordinate, ``kf.fan_out(key, batch)``; an int or a
        sequence of ints; ``()`` for one draw from ``key`` itself.
      logits: float array of unnormalised log-probabilities ``L``, shared by every example; with
        ``batched_logits=True`` its leading axes are the batch (``(*batch, *L)``), one set of
        logits per example.
      axis: the category axis of the per-example logits ``L``.
      shape: per-example result shape (default ``L`` without ``axis``), as in JAX.
      mode: the Gumbel draw's mode, ``"low"`` (default, pinned) or ``"high"``.
      batched_logits: whether ``logits`` carries the batch axes in front.
      offset: index of the first row on batch axis 0: block ``[offset, offset + batch[0])`` of a
        larger virtual batch, with its bits (``"threefry"`` only).
      chunk_size: rows of batch axis 0 computed at a time (bounded working memory), same bits.
      sharding: a ``jax.sharding.NamedSharding`` for the result; only batch axes may be sharded,
        each over mesh axes that divide its size. Each device computes its own rows.
      stream: the stream for a raw or JAX-typed key (default ``"threefry"``); a keyfan key carries
        its own, and a different ``stream=`` is a ``ValueError``.
      portable: ``True`` for float32 values with the same bits on every CPU instruction set and GPU
        (float16/bfloat16: those values rounded), not JAX's: see docs/guides/reproducibility.md.
        ``False`` (default): JAX's values, whose last bits follow the CPU.

    Returns:
      An array of category indices of shape ``(*batch, *shape)`` (JAX's default integer dtype).

    Raises:
      TypeError: a positional argument after ``key``, a ``key`` that is not a key, or an argument
        of the wrong type (each error names it).
      ValueError: a negative or too large ``batch``/``shape`` axis, a result too large for memory,
        ``offset``/``chunk_size``/``sharding`` that do not fit ``batch``, or a ``stream=`` that
        disagrees with the key.
        Also: non-float logits, NaN logits, a set of logits that are all ``-inf``, or a
        ``shape`` that does not end with the logits' non-category shape.

    Examples:
      >>> import jax, jax.numpy as jnp, keyfan as kf
      >>> key = kf.key(0)
      >>> logits = jnp.log(jnp.array([0.2, 0.3, 0.5]))
      >>> c = kf.categorical(key, batch=(5,), logits=logits)
      >>> int(c[2]) == int(jax.random.categorical(kf.at(key, 2), logits))
      True
    """
    logits = jnp.asarray(logits)
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"logits must be a floating array, got dtype {logits.dtype}.")
    batch_shape = as_shape("batch", batch)
    if batched_logits:
        if logits.shape[: len(batch_shape)] != batch_shape:
            raise ValueError(
                f"batched_logits=True needs logits of shape (*batch, *L) with batch "
                f"{batch_shape}; got logits of shape {logits.shape}."
            )
        per_example = logits.shape[len(batch_shape):]
    else:
        per_example = logits.shape
    if not per_example:
        raise ValueError("logits must have at least one (category) axis per example.")
    axis = as_int("axis", axis, lo=-len(per_example), hi=len(per_example))
    axis = axis - len(per_example) if axis >= 0 else axis
    rest = tuple(np.delete(per_example, axis % len(per_example)))
    out_shape = rest if shape is None else as_shape("shape", shape)
    try:
        fits = np.broadcast_shapes(out_shape, rest) == out_shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"shape {out_shape} must end with the logits' non-category shape {rest}, as in JAX."
        )
    _check_values("logits must not be NaN (jax.random.categorical would return an index anyway)",
                  lambda: ~jnp.isnan(logits).any(), logits=logits)
    _check_values("every set of logits needs a category with a logit above -inf (all -inf: no category "
                  "has positive probability)", lambda: (logits > -jnp.inf).any(axis=axis).all(), logits=logits)
    prefix = out_shape[: len(out_shape) - len(rest)]
    core = list(out_shape[len(out_shape) - len(rest):])
    core.insert(axis % len(per_example), per_example[axis])
    gumbel_shape = (*prefix, *core)
    mode = _mode(mode)
    spec = None
    sharding = _named_sharding(sharding)
    if sharding is not None:
        spec_entries = tuple(sharding.spec)[: len(batch_shape)]
        spec = NamedSharding(sharding.mesh, jax.sharding.PartitionSpec(*spec_entries))
    d = _common(key, batch_shape, gumbel_shape, offset, chunk_size, spec, stream)
    dt = np.dtype(logits.dtype)
    portable = _portable_mode(portable, dt, mode)
    n = math.prod(gumbel_shape)
    d.check_size(2 * n if mode == "high" else n, 32 if portable else _float_bits(dt))
    values = logits
    if portable:  # float32 Gumbel draws plus float32 logits: one IEEE addition, then the argmax
        dt, values = np.dtype(np.float32), logits.astype(np.float32)
        g = d.run(Gumbel(dt, mode, n, portable))
    # "low": the Gumbel step runs outside the draw's loop and fuses into the argmax (20% faster
    # at 1e6 x 10 classes); "high" mixes two draws per value and stays in the loop.
    elif mode == "low":
        g = gumbel_low_from_bits(d.run(UniformBits(dt)), dt)
    else:
        g = d.run(Gumbel(dt, mode, n))
    if batched_logits:
        lg = values.reshape(batch_shape + (1,) * len(prefix) + per_example)
    else:
        lg = jnp.expand_dims(values, tuple(range(len(prefix)))) if prefix else values
    return jnp.argmax(g + lg, axis=axis)


# -- Poisson -------------------------------------------------------------------------------------
# JAX's jax.random.poisson refuses every key implementation but its own threefry2x32 (an identity
# check on the implementation, with no hook), so it raises NotImplementedError on a keyfan key.
# kf.poisson runs JAX's algorithm (JAX's random module: _poisson, _poisson_knuth,
# _poisson_rejection, Apache-2.0) on the key's stream, through the same jax.random calls, so it
# is bitwise equal to jax.random.poisson on JAX's Threefry with the matching flag
# (tests/conformance/ checks it, and the golden values pin it across JAX versions).

def _poisson_knuth(key: Array, lam: Array, shape: tuple[int, ...], dtype: np.dtype, max_iters: Any) -> Array:
    def body(carry: tuple[Any, ...]) -> tuple[Any, ...]:
        i, k, rng, log_prod = carry
        rng, subkey = jax.random.split(rng)
        k = jax.lax.select(log_prod > -lam, k + 1, k)
        u = jax.random.uniform(subkey, shape, np.float32)
        return i + 1, k, rng, log_prod + jnp.log(u)

    def cond(carry: tuple[Any, ...]) -> Any:
        i, log_prod = carry[0], carry[3]
        return (log_prod > -lam).any() & (i < max_iters)

    k_init = jax.lax.full_like(lam, 0, dtype, shape)
    log_rate_init = jax.lax.full_like(lam, 0, np.float32, shape)
    k = jax.lax.while_loop(cond, body, (0, k_init, key, log_rate_init))[1]
    return (k - 1).astype(dtype)


def _poisson_rejection(key: Array, lam: Array, shape: tuple[int, ...], dtype: np.dtype, max_iters: Any) -> Array:
    log_lam = jax.lax.log(lam)
    b = 0.931 + 2.53 * jax.lax.sqrt(lam)
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    v_r = 0.9277 - 3.6224 / (b - 2)

    def body(carry: tuple[Any, ...]) -> tuple[Any, ...]:
        i, k_out, accepted, key = carry
        key, subkey_0, subkey_1 = jax.random.split(key, 3)
        u = jax.random.uniform(subkey_0, shape, lam.dtype) - 0.5
        v = jax.random.uniform(subkey_1, shape, lam.dtype)
        u_shifted = 0.5 - abs(u)
        k = jax.lax.floor((2 * a / u_shifted + b) * u + lam + 0.43)
        s = jax.lax.log(v * inv_alpha / (a / (u_shifted * u_shifted) + b))
        t = -lam + k * log_lam - jax.lax.lgamma(k + 1)
        accept1 = (u_shifted >= 0.07) & (v <= v_r)
        reject = (k < 0) | ((u_shifted < 0.013) & (v > u_shifted))
        accept = accept1 | (~reject & (s <= t))
        return i + 1, jax.lax.select(accept, k, k_out), accepted | accept, key

    def cond(carry: tuple[Any, ...]) -> Any:
        i, _, accepted, _ = carry
        return (~accepted).any() & (i < max_iters)

    k_init = jax.lax.full_like(lam, -1, lam.dtype, shape)
    accepted = jax.lax.full_like(lam, False, np.dtype("bool"), shape)
    k = jax.lax.while_loop(cond, body, (0, k_init, accepted, key))[1]
    return k.astype(dtype)


def _poisson_one(key: Array, lam: Array, shape: tuple[int, ...], dtype: np.dtype) -> Array:
    """``jax.random.poisson(key, lam, shape, dtype)`` for a key of any keyfan stream."""
    lam = jax.lax.convert_element_type(jnp.broadcast_to(lam, shape), np.float32)
    use_knuth = jnp.isnan(lam) | (lam < 10)
    lam_knuth = jax.lax.select(use_knuth, lam, jax.lax.full_like(lam, 0.0))
    lam_rejection = jax.lax.select(use_knuth, jax.lax.full_like(lam, 1e5), lam)
    max_iters = dtype.type(np.iinfo(dtype).max)
    result = jax.lax.select(
        use_knuth,
        _poisson_knuth(key, lam_knuth, shape, dtype, max_iters),
        _poisson_rejection(key, lam_rejection, shape, dtype, max_iters),
    )
    return jax.lax.select(lam == 0, jnp.zeros_like(result), result)


@_keywords_after_key
def poisson(key: KeyLike, *, batch: ShapeLike, shape: ShapeLike = (), dtype: DTypeLike | None = None,
            lam: ArrayLike, stream: StreamName | None = None, portable: bool = False) -> Array:
    """Per-example Poisson draws, as ``jax.random.poisson(k, lam, shape, dtype)`` per example.

    ``jax.random.poisson`` itself raises ``NotImplementedError`` on a keyfan key (JAX runs it
    only for its built-in ``threefry2x32`` implementation); this is the keyfan equivalent, and
    with ``batch=()`` it is the single draw ``jax.random.poisson`` would give on JAX's Threefry
    (``jax_threefry_partitionable`` matching the key's stream), bit for bit. Row ``i`` is that
    draw with ``kf.at(key, i)``. It runs JAX's rejection loop (no fused fast path, no
    ``offset``/``chunk_size``/``sharding``).

    Args:
      key: a single key.
      batch: the batch shape: one key per coordinate, ``kf.fan_out(key, batch)``; an int or a
        sequence of ints, each below ``2**32`` (``2**31`` on ``"threefry-legacy"``); ``()`` for
        one draw from ``key`` itself.
      shape: the shape of each example's draw, as ``shape`` in ``jax.random``.
      dtype: an integer dtype (default JAX's default int: ``int64`` under x64, else ``int32``;
        64-bit ones need x64).
      lam: rate(s) ``>= 0``, broadcastable to ``(*batch, *shape)`` (per-example rates allowed).
      stream: the stream for a raw or JAX-typed key.
      portable: ``True`` runs the same algorithm on the same uniforms with keyfan's portable
        arithmetic (``keyfan._portable_poisson``): integers that are the same on every CPU and
        GPU, JAX's except where a value falls within rounding of an acceptance boundary.

    Returns:
      An integer array of shape ``(*batch, *shape)``, equal to
        ``vmap(lambda k, l: jax.random.poisson(k, l, shape, dtype))(kf.fan_out(key, batch), lam)``.

    Raises:
      TypeError: a positional argument after ``key``, a ``key`` that is not a key, or an argument
        of the wrong type (each error names it).
      ValueError: a negative or too large ``batch``/``shape`` axis, a result too large for memory,
        ``offset``/``chunk_size``/``sharding`` that do not fit ``batch``, or a ``stream=`` that
        disagrees with the key.
        Also: a negative or NaN ``lam``.

    Examples:
      >>> import jax, keyfan as kf
      >>> n = kf.poisson(jax.random.PRNGKey(0), batch=(), shape=(3,), lam=4.0)
      >>> bool((n == jax.random.poisson(jax.random.PRNGKey(0), 4.0, (3,))).all())
      True
    """
    d = _common(key, batch, shape, 0, None, None, stream)
    dt = _dtype("dtype", dtype, np.int64 if x64_enabled() else np.int32, "int")
    lam_array = jnp.asarray(lam)
    if not (jnp.issubdtype(lam_array.dtype, jnp.floating) or jnp.issubdtype(lam_array.dtype, jnp.integer)) \
            or lam_array.dtype == np.bool_:
        raise TypeError(f"lam must be a real number or array, got dtype {lam_array.dtype}.")
    lam_array = jnp.broadcast_to(d.param("lam", lam_array), d.full_shape)
    if not is_traced(lam_array):  # on the host: inside jit, a comparison of constants is traced
        host = np.asarray(lam_array)
        _check_values("lam must be a rate >= 0 (not NaN)", lambda: (host >= 0).all(), lam=host)
    one = _portable_poisson.poisson_one if check_portable(portable) else _poisson_one
    fn = lambda k, rate: one(k, rate, d.shape, dt)  # noqa: E731
    keys = jax.random.wrap_key_data(d.key.data, impl=d.key.stream.spec)
    if d.batch:
        keys = fan_out(keys, d.batch)
    for _ in d.batch:
        fn = jax.vmap(fn)
    return cast(Array, jax.jit(fn)(keys, lam_array))
