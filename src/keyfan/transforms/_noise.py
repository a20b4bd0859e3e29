"""Per-example additive Gaussian noise."""

from __future__ import annotations

from functools import partial
from typing import cast

import jax
from jax import Array
from jax.typing import ArrayLike

from keyfan._checks import as_float
from keyfan.sample import normal
from keyfan.transforms._common import drawn, floating, single_key, split_batch
from keyfan.typing import KeyLike, StreamName

__all__ = ["gaussian_noise"]


@partial(jax.jit, static_argnames=("batch", "scale"))
def _noise(key: Array, x: Array, batch: tuple[int, ...], scale: float) -> Array:
    event = x.shape[len(batch):]
    if batch:
        z = drawn(lambda k: normal(k, batch=batch, shape=event, dtype=x.dtype), key)
    else:
        z = drawn(lambda k: jax.random.normal(k, event, x.dtype), key)
    return x + scale * z


def gaussian_noise(key: KeyLike, x: ArrayLike, scale: ArrayLike = 1.0, *, batch_axes: int = 0,
                   stream: StreamName | None = None) -> Array:
    """Adds ``scale * N(0, 1)`` noise, drawn per example.

    Args:
      key: a single key (typed or raw ``uint32[2]``).
      x: floating array; its first ``batch_axes`` axes index examples.
      scale: the noise standard deviation, a Python float ``>= 0``.
      batch_axes: number of leading batch axes of ``x`` (0: ``x`` is one example).
      stream: stream for a raw or JAX-typed key (default ``"threefry"``).

    Returns:
      An array like ``x``: ``x + scale * jax.random.normal(key, x.shape, x.dtype)`` for one
        example; with ``batch_axes=1`` row ``i`` equals the call with ``kf.at(key, i)`` on ``x[i]``,
        bit for bit (the noise comes from ``kf.normal``, computed apart from the add so a row has
        the same bits eagerly, under ``jit`` and inside a larger jitted program).

    Raises:
      TypeError: ``key`` is not a single key, or ``x`` is not a floating array.
      ValueError: ``scale`` is negative or not finite, or ``batch_axes`` exceeds the rank of ``x``.

    Examples:
      >>> import jax.numpy as jnp, keyfan as kf
      >>> y = kf.transforms.gaussian_noise(kf.key(0), jnp.zeros((3, 5)), 0.1, batch_axes=1)
      >>> y.shape
      (3, 5)
    """
    x, batch, _ = split_batch("x", x, batch_axes)
    floating("x", x)
    scale = as_float("scale", scale, lo=0.0)
    return cast(Array, _noise(single_key(key, stream), x, batch, scale))
