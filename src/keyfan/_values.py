"""Bits-to-value steps: each distribution of ``jax.random``, as a step from raw bits.

Each step is a frozen dataclass (hashable, so the jitted draw is cached per distribution and
dtype) called as ``step(bits, *params)`` where ``bits(bit_width, ...)`` returns the flat raw
bits of the draw and ``params`` are flat arrays. Each reproduces the arithmetic of the matching
``jax.random`` function operation for operation (JAX 0.4 through 0.10 share it), so a keyfan
draw equals the canonical ``vmap`` of ``jax.random`` bit for bit; the tests check every one.

With ``portable=True`` a float step runs :mod:`keyfan._portable` instead: float32 values that
are the same on every CPU instruction set and GPU (JAX's are not: XLA contracts their
multiply-adds into fused ones where the CPU has them), drawn from one 32-bit word per value.
16-bit floats are those float32 values rounded to the dtype; 64-bit floats have no portable
step. Integer and boolean steps (``Bits``, ``RandInt``, ``Bernoulli``) are exact arithmetic
and comparisons, the same everywhere as they are.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from keyfan import _portable
from keyfan._checks import as_bool
from keyfan._kernel import BitsFn

__all__ = ["PORTABLE_DTYPES", "Bernoulli", "Bits", "Gumbel", "Normal", "RandInt", "TruncatedNormal", "Uniform",
           "UniformBits", "check_portable", "gumbel_low_from_bits"]

PORTABLE_DTYPES = tuple(np.dtype(d) for d in ("float32", "float16", "bfloat16", "complex64"))
"""The dtypes of portable float draws (``complex64`` for ``normal`` only)."""

_SPLIT = ((0, 2),), ((1, 2),)
"""``k1, k2 = jax.random.split(k)`` as paths below an example's key."""


def check_portable(portable: object, dtype: np.dtype | None = None, *, complex_ok: bool = False) -> bool:
    """``portable`` as a bool; ``TypeError`` unless it is one, ``ValueError`` for a float
    ``dtype`` that has no portable step."""
    portable = as_bool("portable", portable)
    allowed = [d for d in PORTABLE_DTYPES if complex_ok or d.kind != "c"]
    if portable and dtype is not None and dtype not in allowed:
        raise ValueError(
            f"portable=True draws {', '.join(map(str, allowed))} only (float32 arithmetic, the same on "
            f"every CPU and GPU); got dtype={dtype}. Draw float32 and convert, or use portable=False "
            f"(JAX's values, which depend on the CPU's instruction set).")
    return portable


def _portable_words(bits: BitsFn, **draw) -> Array:
    return bits(32, **draw)


def _rounded(x: Array, dtype: np.dtype) -> Array:
    """A portable float32 result in ``dtype`` (one correctly rounded conversion)."""
    return x if x.dtype == dtype else x.astype(dtype)


def _uniform_bits(bits: BitsFn, dtype: np.dtype, **draw) -> Array:
    """Raw bits for a uniform float of ``dtype``, widened to the float's width."""
    finfo = jnp.finfo(dtype)
    rng_bits = 8 if finfo.nmant < 8 else finfo.bits
    raw = bits(rng_bits, **draw)
    if rng_bits != finfo.bits:
        raw = lax.convert_element_type(raw, np.dtype(f"uint{finfo.bits}"))
    return raw


def uniform_from_bits(raw: Array, dtype: np.dtype, minval: Array, maxval: Array) -> Array:
    """``jax.random.uniform``'s step: mantissa bits with exponent 1, minus 1, scaled."""
    finfo = jnp.finfo(dtype)
    rng_bits = 8 if finfo.nmant < 8 else finfo.bits
    uint_dtype = raw.dtype
    float_bits = lax.shift_right_logical(raw, jnp.array(rng_bits - finfo.nmant, uint_dtype))
    float_bits = lax.bitwise_or(float_bits, jnp.asarray(np.array(1.0, dtype).view(uint_dtype), uint_dtype))
    floats = lax.bitcast_convert_type(float_bits, dtype) - jnp.array(1.0, dtype)
    return lax.max(minval, floats * (maxval - minval) + minval)


def _uniform(bits: BitsFn, dtype: np.dtype, minval: Array, maxval: Array, **draw) -> Array:
    return uniform_from_bits(_uniform_bits(bits, dtype, **draw), dtype, minval, maxval)


def _normal_real(bits: BitsFn, dtype: np.dtype, **draw) -> Array:
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    hi = np.array(1.0, dtype)
    u = _uniform(bits, dtype, jnp.asarray(lo), jnp.asarray(hi), **draw)
    return lax.mul(np.array(np.sqrt(2), dtype), lax.erf_inv(u))


def gumbel_low_from_bits(raw: Array, dtype: np.dtype) -> Array:
    """``jax.random.gumbel``'s ``"low"`` step from the raw bits of :class:`UniformBits`."""
    info = jnp.finfo(dtype)
    u = uniform_from_bits(raw, dtype, jnp.asarray(info.tiny, dtype), jnp.ones((), dtype))
    return -jnp.log(-jnp.log(u))


@dataclasses.dataclass(frozen=True)
class UniformBits:
    """The raw bits under ``jax.random.uniform`` of ``dtype``, widened to its width; the value
    step runs outside the draw's loop, where XLA can fuse it into a consumer (a reduction)."""

    dtype: np.dtype

    def __call__(self, bits: BitsFn) -> Array:
        return _uniform_bits(bits, self.dtype)


@dataclasses.dataclass(frozen=True)
class Bits:
    """``jax.random.bits``: raw unsigned bits of ``dtype``."""

    dtype: np.dtype

    def __call__(self, bits: BitsFn) -> Array:
        return bits(self.dtype.itemsize * 8)


@dataclasses.dataclass(frozen=True)
class Uniform:
    """``jax.random.uniform(key, shape, dtype, minval, maxval)``."""

    dtype: np.dtype
    portable: bool = False

    def __call__(self, bits: BitsFn, minval: Array, maxval: Array) -> Array:
        if self.portable:
            f32 = np.dtype(np.float32)
            return _rounded(_portable.uniform(_portable_words(bits), minval.astype(f32), maxval.astype(f32)),
                            self.dtype)
        return _uniform(bits, self.dtype, minval, maxval)


@dataclasses.dataclass(frozen=True)
class Normal:
    """``jax.random.normal(key, shape, dtype)``, real or complex."""

    dtype: np.dtype
    portable: bool = False

    def __call__(self, bits: BitsFn) -> Array:
        if self.portable:
            return self._portable(bits)
        if not jnp.issubdtype(self.dtype, jnp.complexfloating):
            return _normal_real(bits, self.dtype)
        sqrt2 = np.array(np.sqrt(2), self.dtype)
        real_dtype = np.array(0, self.dtype).real.dtype
        re = _normal_real(bits, real_dtype, path=_SPLIT[0]).astype(self.dtype)
        im = _normal_real(bits, real_dtype, path=_SPLIT[1]).astype(self.dtype)
        return (re + 1j * im) / sqrt2

    def _portable(self, bits: BitsFn) -> Array:
        if self.dtype != np.complex64:
            return _rounded(_portable.normal(_portable_words(bits)), self.dtype)
        # As JAX: the real and imaginary parts from the two keys of a split, each scaled by
        # 1/sqrt(2) (an exact-product multiply, so the scaling is portable too).
        re, im = (_portable.scaled(_portable.normal(_portable_words(bits, path=p)), np.sqrt(0.5)) for p in _SPLIT)
        return lax.complex(re, im)


@dataclasses.dataclass(frozen=True)
class Bernoulli:
    """``jax.random.bernoulli(key, p, shape, mode)``; ``dtype`` is ``p``'s float dtype."""

    dtype: np.dtype
    mode: str
    event_size: int

    def __call__(self, bits: BitsFn, p: Array) -> Array:
        zero, one = jnp.zeros((), self.dtype), jnp.ones((), self.dtype)
        if self.mode == "low":
            return _uniform(bits, self.dtype, zero, one) < p
        n = self.event_size
        u1 = _uniform(bits, self.dtype, zero, one, counter_offset=0, draw_size=2 * n)
        u2 = _uniform(bits, self.dtype, zero, one, counter_offset=n, draw_size=2 * n)
        u2 = u2 * 2 ** -jnp.finfo(self.dtype).nmant
        return u2 < p - u1


@dataclasses.dataclass(frozen=True)
class TruncatedNormal:
    """``jax.random.truncated_normal(key, lower, upper, shape, dtype)``."""

    dtype: np.dtype
    portable: bool = False

    def params(self, lower: Array, upper: Array) -> tuple[Array, ...]:
        """The step's parameters: the bounds, and with ``portable`` their float32 ``erf`` too
        (computed once per bound, before the per-value loop)."""
        if not self.portable:
            return lower, upper
        return _portable_bounds(lower, upper)

    def __call__(self, bits: BitsFn, lower: Array, upper: Array, *erf_bounds: Array) -> Array:
        if self.portable:
            f32 = np.dtype(np.float32)
            out = _portable.truncated_normal(_portable_words(bits), lower.astype(f32), upper.astype(f32), *erf_bounds)
            if self.dtype == f32:
                return out
            # Rounding may reach a bound: keep the open interval in the dtype, as JAX does.
            return jnp.clip(out.astype(self.dtype), lax.nextafter(lower, np.array(np.inf, self.dtype)),
                            lax.nextafter(upper, np.array(-np.inf, self.dtype)))
        sqrt2 = np.array(np.sqrt(2), self.dtype)
        a = lax.erf(lower / sqrt2)
        b = lax.erf(upper / sqrt2)
        u = _uniform(bits, self.dtype, a, b)
        out = sqrt2 * lax.erf_inv(u)
        return jnp.clip(out, lax.nextafter(lower, np.array(np.inf, self.dtype)),
                        lax.nextafter(upper, np.array(-np.inf, self.dtype)))


@jax.jit
def _portable_bounds(lower: Array, upper: Array) -> tuple[Array, ...]:
    f32 = np.dtype(np.float32)
    _, _, a, b = _portable.truncation_bounds(lower.astype(f32), upper.astype(f32))
    return lower, upper, a, b


def _convert_and_clip_integer(val: Array, dtype: np.dtype) -> Array:
    """Converts an integer array to ``dtype``, clipping to its range rather than wrapping."""
    lo = max(jnp.iinfo(dtype).min, jnp.iinfo(val.dtype).min)
    hi = min(jnp.iinfo(dtype).max, jnp.iinfo(val.dtype).max)
    return jnp.clip(val, np.array(lo, val.dtype), np.array(hi, val.dtype)).astype(dtype)


@dataclasses.dataclass(frozen=True)
class RandInt:
    """``jax.random.randint``'s sampling step in a 32- or 64-bit ``dtype`` (narrower dtypes are
    sampled in int32 by the caller, as JAX does)."""

    dtype: np.dtype

    def __call__(self, bits: BitsFn, minval: Array, maxval: Array) -> Array:
        dtype = self.dtype
        nbits = jnp.iinfo(dtype).bits
        maxval_out_of_range = lax.gt(
            maxval, _convert_and_clip_integer(jnp.array(jnp.iinfo(dtype).max, dtype), maxval.dtype))
        minval = _convert_and_clip_integer(minval, dtype)
        maxval = _convert_and_clip_integer(maxval, dtype)
        higher_bits = bits(nbits, path=_SPLIT[0])
        lower_bits = bits(nbits, path=_SPLIT[1])
        unsigned = np.dtype(f"uint{nbits}")
        span = lax.convert_element_type(maxval - minval, unsigned)
        span = lax.select(maxval <= minval, lax.full_like(span, 1), span)
        span = lax.select(maxval_out_of_range & (maxval > minval), lax.add(span, np.array(1, unsigned)), span)
        multiplier = lax.rem(np.array(2 ** (nbits // 2), unsigned), span)
        multiplier = lax.rem(lax.mul(multiplier, multiplier), span)
        offset = lax.add(lax.mul(lax.rem(higher_bits, span), multiplier), lax.rem(lower_bits, span))
        offset = lax.rem(offset, span)
        return lax.add(minval, lax.convert_element_type(offset, dtype))


@dataclasses.dataclass(frozen=True)
class Gumbel:
    """``jax.random.gumbel(key, shape, dtype, mode)`` for ``mode`` "low" or "high"."""

    dtype: np.dtype
    mode: str
    event_size: int
    portable: bool = False

    def __call__(self, bits: BitsFn) -> Array:
        if self.portable:  # "low" only: the sampler refuses mode="high" with portable=True
            return _rounded(_portable.gumbel(_portable_words(bits)), self.dtype)
        if self.mode == "low":
            return gumbel_low_from_bits(_uniform_bits(bits, self.dtype), self.dtype)
        info = jnp.finfo(self.dtype)
        one, zero, n = jnp.ones((), self.dtype), jnp.zeros((), self.dtype), self.event_size
        high = _uniform(bits, self.dtype, zero, one, counter_offset=0, draw_size=2 * n)
        low = _uniform(bits, self.dtype, zero, one, counter_offset=n, draw_size=2 * n)
        x = jnp.where(high >= 0.5, high, high + 2 ** -(info.nmant) * low + info.tiny)
        return -jnp.log(-jnp.log1p(-x))
