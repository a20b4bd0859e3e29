"""Portable Poisson draws: JAX's algorithm and keys, with ``keyfan._portable`` arithmetic.

``kf.poisson`` runs ``jax.random.poisson``'s algorithm (Knuth's product of uniforms below
``lam = 10``, Hormann's transformed rejection from 10 on; JAX's random/core.py, Apache-2.0)
on the key's stream. Its integers follow the CPU where a uniform lands near an acceptance
boundary, because ``log``, ``sqrt``, ``lgamma`` and the divisions are XLA's. Here the same keys
and the same uniforms (``jax.random.uniform``'s float32 values, exact) go through the portable
``log``, ``sqrt``, ``recip`` and ``log_factorial``, with every product exact, so the integers are
the same on every CPU and GPU; they equal JAX's except where its rounding and ours fall on
different sides of a boundary. Each loop's arithmetic is a function of words alone, so the tests
rerun it in NumPy.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from keyfan._exact import F32, mul, mul_add
from keyfan._portable import log, log_factorial, recip, sqrt, unit_uniform

__all__ = ["Rejection", "knuth_log_uniform", "poisson_one", "rejection_constants", "rejection_step"]


def knuth_log_uniform(words: Any) -> Any:
    """``log(u)`` of ``jax.random.uniform``'s float32 value for ``words`` (``-inf`` at 0)."""
    return log(unit_uniform(words))


class Rejection(NamedTuple):
    """What Hormann's rejection step needs of ``lam`` (computed once)."""

    lam: Any
    log_lam: Any
    a: Any
    b: Any
    inv_alpha: Any
    v_r: Any


def rejection_constants(lam: Any) -> Rejection:
    """JAX's ``b = 0.931 + 2.53 sqrt(lam)``, ``a``, ``inv_alpha``, ``v_r`` for float32 ``lam >= 10``."""
    b = mul_add(F32(2.53), sqrt(lam), F32(0.931))
    a = mul_add(F32(0.02483), b, F32(-0.059))
    inv_alpha = mul_add(F32(1.1328), recip(b - F32(3.4)), F32(1.1239))
    v_r = F32(0.9277) - mul(F32(3.6224), recip(b - F32(2)))
    return Rejection(lam, log(lam), a, b, inv_alpha, v_r)


def rejection_step(words_u: Any, words_v: Any, c: Rejection) -> tuple[Any, Any]:
    """One round of the rejection loop: ``(k, accept)`` from the two uniforms' words."""
    u = unit_uniform(words_u) - F32(0.5)  # exact
    v = unit_uniform(words_v)
    u_shifted = F32(0.5) - abs(u)  # exact, in [2**-23, 0.5] or 0
    r = recip(u_shifted)  # inf at u_shifted = 0: k and s are then NaN, and the round rejects
    a_r = mul(c.a, r)
    k = _floor(mul(mul_add(a_r, F32(2), c.b), u) + c.lam + F32(0.43))  # (2a / u_s + b) u + lam + 0.43
    s = log(mul(v, c.inv_alpha)) - log(mul_add(a_r, r, c.b))  # log(v inv_alpha / (a / u_s**2 + b))
    t = (mul(k, c.log_lam) - c.lam) - log_factorial(k)
    accept1 = (u_shifted >= F32(0.07)) & (v <= c.v_r)
    reject = (k < F32(0)) | ((u_shifted < F32(0.013)) & (v > u_shifted))
    return k, accept1 | (~reject & (s <= t))


def _floor(x: Any) -> Any:
    return jnp.floor(x) if isinstance(x, jax.Array) else np.floor(x)


def _words(key: Array, shape: tuple[int, ...]) -> Array:
    return jax.random.bits(key, shape, np.uint32)


def _knuth(key: Array, lam: Array, shape: tuple[int, ...], dtype: np.dtype, max_iters: Any) -> Array:
    def body(carry: tuple[Any, ...]) -> tuple[Any, ...]:
        i, k, rng, log_prod = carry
        rng, subkey = jax.random.split(rng)
        k = lax.select(log_prod > -lam, k + 1, k)
        return i + 1, k, rng, log_prod + knuth_log_uniform(_words(subkey, shape))

    def cond(carry: tuple[Any, ...]) -> Any:
        i, log_prod = carry[0], carry[3]
        return (log_prod > -lam).any() & (i < max_iters)

    k_init = lax.full_like(lam, 0, dtype, shape)
    k = lax.while_loop(cond, body, (0, k_init, key, lax.full_like(lam, 0, np.float32, shape)))[1]
    return (k - 1).astype(dtype)


def _rejection(key: Array, lam: Array, shape: tuple[int, ...], dtype: np.dtype, max_iters: Any) -> Array:
    constants = rejection_constants(lam)

    def body(carry: tuple[Any, ...]) -> tuple[Any, ...]:
        i, k_out, accepted, key = carry
        key, subkey_0, subkey_1 = jax.random.split(key, 3)
        k, accept = rejection_step(_words(subkey_0, shape), _words(subkey_1, shape), constants)
        return i + 1, lax.select(accept, k, k_out), accepted | accept, key

    def cond(carry: tuple[Any, ...]) -> Any:
        i, _, accepted, _ = carry
        return (~accepted).any() & (i < max_iters)

    k_init = lax.full_like(lam, -1, lam.dtype, shape)
    accepted = lax.full_like(lam, False, np.dtype("bool"), shape)
    return lax.while_loop(cond, body, (0, k_init, accepted, key))[1].astype(dtype)


def poisson_one(key: Array, lam: Array, shape: tuple[int, ...], dtype: np.dtype) -> Array:
    """One portable ``poisson(key, lam, shape, dtype)``: JAX's ``_poisson`` with portable arithmetic."""
    lam = lax.convert_element_type(jnp.broadcast_to(lam, shape), np.float32)
    use_knuth = jnp.isnan(lam) | (lam < 10)
    lam_knuth = lax.select(use_knuth, lam, lax.full_like(lam, 0.0))
    lam_rejection = lax.select(use_knuth, lax.full_like(lam, 1e5), lam)
    max_iters = dtype.type(np.iinfo(dtype).max)
    result = lax.select(use_knuth, _knuth(key, lam_knuth, shape, dtype, max_iters),
                        _rejection(key, lam_rejection, shape, dtype, max_iters))
    return lax.select(lam == 0, jnp.zeros_like(result), result)
