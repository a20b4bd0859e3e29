"""Portable bits-to-value steps: float32 draws with the same bits on every CPU and GPU.

Each function maps raw uint32 words to float32 values with :mod:`keyfan._exact`'s
contraction-proof arithmetic only (exact products, single IEEE additions, integer bit
operations, comparisons), never XLA's ``log``/``erf_inv``/division, so the values are one fixed
sequence of correctly rounded IEEE-754 operations, the same under every ``--xla_cpu_max_isa``
and, by construction, on any IEEE machine; the tests compare them with the same code run in
NumPy. They are not JAX's values (JAX's ``normal`` uses XLA's ``erf_inv``, whose polynomial
contracts differently per CPU), but the same distributions, to within a few float32 units in
the last place of the exact transforms:

* ``log``: the exponent from the bits, the significand reduced to ``[sqrt(1/2), sqrt(2))`` and
  ``log1p(f) = f + f**2 * q(f)`` with ``q`` a degree-8 polynomial;
* ``normal``: the inverse CDF, ``sqrt(2) * erfinv(x)`` as ``x * p(w)`` with
  ``w = -log((1 - x) (1 + x))`` and ``p`` a degree-9 polynomial in ``w`` on ``[0, 5)`` and another
  on ``[5, 17]`` (the tail, where Giles's erfinv uses ``sqrt(w)``: no square root here);
* ``erf``: ``x * p(x**2)`` below 1, a degree-12 polynomial on ``[1, 4]``, 1 beyond.

The polynomials were fitted by weighted least squares in float64 against ``scipy.special`` on
Chebyshev nodes and rounded to float32; ``tests/test_portable.py`` measures their errors over
every input keyfan gives them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from keyfan._exact import F32, from_int, horner, mul, mul_add, split, where, xp

__all__ = ["erf", "gumbel", "log", "log_factorial", "normal", "open_uniform", "recip", "scaled", "sqrt",
           "symmetric_uniform", "truncated_normal", "truncation_bounds", "uniform", "unit_uniform"]

_LOG1P_Q = (
    -0.4999999701976776, 0.3333333432674408, -0.25000783801078796, 0.20000900328159332, -0.16626304388046265,
    0.14212124049663544, -0.13138528168201447, 0.12676946818828583, -0.07587191462516785,
)
"""``log1p(f) = f + f**2 * q(f)`` on ``[sqrt(1/2) - 1, sqrt(2) - 1]``."""
_LN2_HI, _LN2_LO = 0.693145751953125, 1.4286067653302662e-06
"""ln 2 in two parts of at most 16 significant bits (``e * part`` is exact for ``|e| < 2**8``)."""
_SQRT2_BITS = np.uint32(0x3FB504F3)

_NORMAL_CENTRAL = (
    2.1233134269714355, 0.34880203008651733, -0.005907719489187002, -0.0017716210568323731,
    0.00030878771212883294, -7.032982466625981e-06, -4.8975530262396205e-06, 6.622295245506393e-07,
    3.2901397162277135e-08, -1.2645068991901098e-08,
)
"""``sqrt(2) * erfinv(x) / x`` as a polynomial in ``w - 2.5`` for ``w = -log(1 - x**2)`` in [0, 5)."""
_NORMAL_TAIL = (
    4.4560227394104, 0.21446426212787628, -0.004724112339317799, 0.00019950400746893138,
    -9.607564606994856e-06, 4.146706089613872e-07, -1.5021644372836818e-08, -9.688052582390583e-10,
    5.191063134901697e-10, -4.531702790799841e-11,
)
"""The same in ``w - 11`` for ``w`` in [5, 17]."""

_ERF_SMALL = (
    1.128379225730896, -0.3761262893676758, 0.11283612251281738, -0.026854809373617172, 0.00519005348905921,
    -0.0008024353883229196, 7.898209878476337e-05,
)
"""``erf(x) / x`` as a polynomial in ``x**2`` on [0, 1]."""
_ERF_LARGE = (
    0.9995930790901184, 0.0021779793314635754, -0.005447070114314556, 0.008354324847459793,
    -0.008612779900431633, 0.0061000254936516285, -0.0028237542137503624, 0.0005742026842199266,
    0.0002919994294643402, -0.00028087192913517356, 5.941381095908582e-05, 2.1406009182101116e-05,
    -8.709440407983493e-06,
)
"""``erf(x)`` as a polynomial in ``x - 2.5`` on [1, 4] (absolute error below 5e-8)."""
_ERF_ONE = 3.9196
"""From here on, float32's nearest value to ``erf(x)`` is 1."""

_MANTISSA = np.uint32(9)
"""A uniform float takes the top 23 of a word's 32 bits, as ``jax.random.uniform`` does."""


# -- Functions -----------------------------------------------------------------------------------

def log(x: Any) -> Any:
    """Natural logarithm of positive normal float32 ``x`` (``-inf`` at 0), within 2 ulps."""
    b = x.view(np.uint32)
    e = (b >> np.uint32(23)).astype(np.int32) - np.int32(127)
    m = (b & np.uint32(0x007FFFFF)) | np.uint32(0x3F800000)
    big = m > _SQRT2_BITS
    m = where(big, m - np.uint32(0x00800000), m)  # the significand halved: [sqrt(1/2), sqrt(2))
    e = where(big, e + np.int32(1), e)
    f = m.view(F32) - F32(1)  # exact
    y = f + mul(f, mul(f, horner(f, _LOG1P_Q)))
    ef = from_int(e)
    out = ef * F32(_LN2_HI) + (ef * F32(_LN2_LO) + y)
    return where(x > F32(0), out, F32(-np.inf))


def erf(x: Any) -> Any:
    """The error function of float32 ``x`` (any value, infinities included), within 5e-8."""
    a = xp(x).minimum(abs(x), F32(_ERF_ONE))  # also maps +-inf; NaN stays NaN
    small = a < F32(1)
    a2 = mul(a, a)
    inner = horner(split(a2), _ERF_SMALL)
    outer = horner(a - F32(2.5), _ERF_LARGE)
    y = where(small, mul(a, inner), outer)
    y = where(a >= F32(_ERF_ONE), F32(1), y)
    return where(x < F32(0), -y, y)


def _sqrt2_erfinv(x: Any) -> Any:
    """``sqrt(2) * erfinv(x)`` for float32 ``x`` in [-1, 1] (``+-inf`` at ``+-1``)."""
    w = -log((F32(1) - x) * (F32(1) + x))  # the product only feeds log's bit operations
    central = w < F32(5)
    t = where(central, w - F32(2.5), xp(w).minimum(w, F32(17)) - F32(11))  # w = inf at x = +-1
    p = horner(t, [where(central, F32(c), F32(d)) for c, d in zip(_NORMAL_CENTRAL, _NORMAL_TAIL, strict=True)])
    z = mul(p, x)
    return where(abs(x) < F32(1), z, x * F32(np.inf))


def recip(x: Any) -> Any:
    """``1 / x`` for positive normal float32 ``x`` below ``2**126`` (``inf`` at 0), within 2 ulps:
    Newton's iteration ``y (2 - x y)`` from an integer estimate, in exact products (no
    division: XLA's GPU division is not correctly rounded)."""
    safe = where(x > F32(0), x, F32(1))
    y = (np.uint32(0x7EF311C3) - safe.view(np.uint32)).view(F32)  # within 12%
    xs = split(safe)
    for _ in range(4):  # the error squares each time: 0.12, 0.015, 2e-4, 5e-8, float32's own
        y = mul(y, F32(2) - mul(xs, y))
    return where(x > F32(0), y, F32(np.inf))


def sqrt(x: Any) -> Any:
    """The square root of non-negative normal float32 ``x`` (0 at 0), within 2 ulps: Newton's
    iteration for ``1 / sqrt(x)`` from an integer estimate, in exact products, times ``x``."""
    safe = where(x > F32(0), x, F32(1))
    y = (np.uint32(0x5F3759DF) - (safe.view(np.uint32) >> np.uint32(1))).view(F32)  # within 3.5%
    half = split(safe * F32(0.5))  # exact
    for _ in range(4):  # 0.035, 2e-3, 5e-6, float32's own
        y = mul(y, F32(1.5) - mul(mul(half, y), y))
    return where(x > F32(0), mul(safe, y), F32(0))


_LOG_FACTORIALS = tuple(float(np.float32(math.lgamma(n + 1))) for n in range(16))
"""``log(n!)`` for ``n`` below 16, rounded to float32."""


def log_factorial(k: Any) -> Any:
    """``lgamma(k + 1)`` for integer-valued float32 ``k >= 0`` (a table below 16, Stirling's
    series beyond, within a few float32 ulps of the result); any finite value for ``k < 0``."""
    np_ = xp(k)
    small = k < F32(16)
    k = where(k >= F32(0), k, F32(0))  # also NaN: any finite value will do
    index = np_.clip(k, F32(0), F32(15)).astype(np.int32)
    table = np_.take(np.asarray(_LOG_FACTORIALS, F32), index)
    x = np_.clip(k, F32(16), F32(2.0**30)) + F32(1)  # exact up to 2**24, then the nearest float
    r = recip(x)
    r2 = mul(r, r)
    series = mul(r, horner(r2, (1 / 12, -1 / 360, 1 / 1260)))  # 1/(12x) - 1/(360x^3) + 1/(1260x^5)
    stirling = mul(x - F32(0.5), log(x)) - x + (F32(0.5 * math.log(2 * math.pi)) + series)
    return where(small, table, stirling)


# -- Uniform floats from words -------------------------------------------------------------------

def _top(words: Any) -> Any:
    """The top 23 bits of uint32 words, as int32."""
    return (words >> _MANTISSA).astype(np.int32)


def unit_uniform(words: Any) -> Any:
    """``k * 2**-23`` in [0, 1): exactly ``jax.random.uniform``'s float32 values."""
    return from_int(_top(words)) * F32(2.0**-23)


def open_uniform(words: Any) -> Any:
    """``(2k + 1) * 2**-24`` in (0, 1): the midpoints of ``unit_uniform``'s grid, never 0 or 1."""
    return from_int(_top(words) * np.int32(2) + np.int32(1)) * F32(2.0**-24)


def symmetric_uniform(words: Any) -> Any:
    """``(2k + 1 - 2**23) * 2**-23`` in (-1, 1): symmetric about 0, never 0 or +-1."""
    return from_int(_top(words) * np.int32(2) + np.int32(1 - 2**23)) * F32(2.0**-23)


# -- Distributions -------------------------------------------------------------------------------

def uniform(words: Any, minval: Any, maxval: Any) -> Any:
    """``max(minval, minval + u * (maxval - minval))`` for ``u = unit_uniform(words)``: JAX's
    formula with the product made exact (so ``uniform(0, 1)`` is exactly JAX's)."""
    return xp(words, minval).maximum(minval, mul_add(unit_uniform(words), maxval - minval, minval))


def normal(words: Any) -> Any:
    """Standard normals by the inverse CDF of :func:`symmetric_uniform` (never infinite:
    ``|z| < 5.3``)."""
    return _sqrt2_erfinv(symmetric_uniform(words))


def truncation_bounds(lower: Any, upper: Any) -> tuple[Any, Any, Any, Any]:
    """``(lower, upper, erf(lower / sqrt(2)), erf(upper / sqrt(2)))``: what
    :func:`truncated_normal` needs of its bounds, computed once per bound (not per value)."""
    inv_sqrt2 = F32(np.sqrt(0.5))
    a, b = (erf(mul(_moderate(bound), inv_sqrt2)) for bound in (lower, upper))
    return lower, upper, a, b


def _moderate(x: Any) -> Any:
    """``x`` clipped to [-6, 6] (``erf(6 / sqrt(2))`` rounds to 1) and 0 below ``2**-60`` in
    magnitude (where a product's low parts would be subnormal, and ``erf`` is ``x`` times a
    constant far below any uniform's resolution)."""
    clipped = xp(x).clip(x, F32(-6), F32(6))
    return where(abs(clipped) < F32(2.0**-60), F32(0), clipped)


def truncated_normal(words: Any, lower: Any, upper: Any, erf_lower: Any, erf_upper: Any) -> Any:
    """Normals truncated to ``(lower, upper)``, by JAX's formula with portable ``erf``,
    ``erfinv`` and uniform: ``sqrt(2) erfinv(u)`` for ``u`` uniform between the bounds' ``erf``
    (``erf_lower``, ``erf_upper`` from :func:`truncation_bounds`)."""
    out = _sqrt2_erfinv(uniform(words, erf_lower, erf_upper))
    return xp(out).clip(out, _next_normal(lower, F32(np.inf)), _next_normal(upper, F32(-np.inf)))


def _next_normal(x: Any, toward: Any) -> Any:
    """``nextafter(x, toward)``, with a subnormal result replaced by the nearest normal float (or
    zero) on the same side of ``x``: XLA's CPU backend reads subnormals as zero, its GPU backend
    does not."""
    n = xp(x).nextafter(x, toward)
    tiny = F32(np.finfo(np.float32).tiny)
    up = toward > x
    flushed = where(up, where(n > F32(0), tiny, F32(-0.0)), where(n < F32(0), -tiny, F32(0.0)))
    return where(abs(n) < tiny, flushed, n)


def gumbel(words: Any) -> Any:
    """Standard Gumbel draws ``-log(-log(u))`` of :func:`open_uniform` (``|g| < 17``)."""
    return -log(-log(open_uniform(words)))


def scaled(x: Any, factor: float) -> Any:
    """``x * factor`` for a constant ``factor``, as an exact-product multiply."""
    return mul(x, F32(factor))
