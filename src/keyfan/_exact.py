"""Contraction-proof float32 arithmetic: the same bits from every compiler, CPU and GPU.

Why: XLA lets LLVM contract a multiply and an add into one fused multiply-add wherever the CPU
has one (x86 from AVX2 on, every GPU), and a fused ``a * b + c`` rounds once where the separate
operations round twice. So ``u * (hi - lo) + lo`` or a polynomial's Horner step gives other
bits under ``--xla_cpu_max_isa=SSE4_2`` than under ``AVX2``, and XLA's own ``log``, ``exp``
and ``erf_inv`` are polynomials that do the same. Contraction cannot change an EXACT product:
if ``a * b`` is representable, ``fma(a, b, c) == round(round(a * b) + c)``. Every function here
therefore multiplies only operands of at most 12 significant bits each (a 24-bit product fits
float32's 24-bit significand exactly), after splitting each factor into two such halves with
integer bit masks; sums are single IEEE additions of rounded values. The result of each
function is then one fixed sequence of correctly rounded IEEE-754 additions of exact products,
which any IEEE machine computes alike, fused or not.

The rules the code follows (and its tests check, by comparing with the same functions run
operation by operation in NumPy, which never contracts):

* no product feeds an addition unless it is exact (a ``mul``/``mul_add`` below, or a scaling by
  a power of two);
* no division and no square root (XLA's GPU division is ``div.full``, not correctly rounded),
  no XLA transcendental function: reciprocals and logarithms are computed here;
* no subnormal value anywhere (XLA's CPU backend flushes them to zero, its GPU backend keeps
  them): a split is exact for ``|x| >= 2**-103`` (its low half is at least ``2**-23 |x|``) and a
  product's partial products stay normal for ``|a b| >= 2**-80``; keyfan's callers keep their
  operands far inside that (uniforms on a ``2**-23`` grid, bounds below ``2**-60`` read as 0).

Every function takes and returns float32 arrays of NumPy or JAX (traced or not): the same code
computes keyfan's portable draws under ``jit`` and their reference in NumPy.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["from_int", "horner", "mul", "mul_add", "split", "where", "xp"]

F32 = np.float32
_HIGH = np.uint32(0xFFFFF000)
"""Sign, exponent and the top 11 stored bits of the significand: 12 significant bits."""
_SIGN_EXPONENT = np.uint32(0xFF800000)
_SIGN_EXPONENT_LOW = np.uint32(0xFF800FFF)


def xp(*arrays: Any) -> ModuleType:
    """``jax.numpy`` if any argument is a JAX array (or tracer), else ``numpy``."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def where(condition: Any, x: Any, y: Any) -> Any:
    return xp(condition, x, y).where(condition, x, y)


def from_int(n: Any) -> Any:
    """An integer array of magnitude below ``2**24`` as float32: exact."""
    return n.astype(F32)


def _bits(x: Any) -> Any:
    return x.view(np.uint32)


def _float(bits: Any) -> Any:
    return bits.view(F32)


def split(x: Any) -> tuple[Any, Any]:
    """``(hi, lo)`` with ``x == hi + lo`` exactly and each of at most 12 significant bits.

    ``hi`` keeps the top 12 significant bits of ``x`` (a mask), ``lo`` is the low 12 bits, as the
    difference of two floats of ``x``'s sign and exponent, which is exact: no float arithmetic
    touches ``x`` itself, so a product computed just before cannot be contracted into it. ``x``
    must be zero or normal.
    """
    b = _bits(F32(x) if isinstance(x, float) else x)
    return _float(b & _HIGH), _float(b & _SIGN_EXPONENT_LOW) - _float(b & _SIGN_EXPONENT)


def _split(x: Any) -> tuple[Any, Any]:
    return x if isinstance(x, tuple) else split(x)


def mul(a: Any, b: Any) -> Any:
    """``a * b`` (to within about one unit in the last place), from four exact partial products.

    ``a`` or ``b`` may be given as its ``split`` already (a factor used many times)."""
    ah, al = _split(a)
    bh, bl = _split(b)
    return ah * bh + ((ah * bl + al * bh) + al * bl)


def mul_add(a: Any, b: Any, c: Any) -> Any:
    """``a * b + c`` (to within about one unit in the last place of the terms)."""
    ah, al = _split(a)
    bh, bl = _split(b)
    return (ah * bh + c) + ((ah * bl + al * bh) + al * bl)


def horner(t: Any, coefficients: Any) -> Any:
    """``sum(c[k] * t**k)``; ``coefficients`` lowest degree first, each a float or an array
    (per-element coefficients, e.g. chosen by interval with :func:`where`)."""
    t = _split(t)
    *rest, top = coefficients
    p = top if not isinstance(top, float) else F32(top)
    for c in reversed(rest):
        p = mul_add(p, t, F32(c) if isinstance(c, float) else c)
    return p
