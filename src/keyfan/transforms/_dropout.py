"""Per-example dropout: one mask per example, drawn from the example's own key."""

from __future__ import annotations

from functools import partial
from typing import cast

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from keyfan._checks import as_float, as_shape
from keyfan.sample import bernoulli
from keyfan.transforms._common import floating, single_key, split_batch, split_shape
from keyfan.typing import KeyLike, ShapeLike, StreamName

__all__ = ["dropout", "dropout_mask"]


def _keep_mask(key: Array, batch: tuple[int, ...], event: tuple[int, ...], keep: float) -> Array:
    if keep == 1.0:
        return jnp.ones(batch + event, bool)
    if keep == 0.0:
        return jnp.zeros(batch + event, bool)
    if batch:
        return bernoulli(key, batch=batch, shape=event, p=keep)
    return jax.random.bernoulli(key, keep, event)


@partial(jax.jit, static_argnames=("batch", "event", "keep"))
def _mask(key: Array, batch: tuple[int, ...], event: tuple[int, ...], keep: float) -> Array:
    return _keep_mask(key, batch, event, keep)


@partial(jax.jit, static_argnames=("batch", "keep"))
def _dropout(key: Array, x: Array, batch: tuple[int, ...], keep: float) -> Array:
    if keep == 0.0:
        return jnp.zeros_like(x)
    mask = _keep_mask(key, batch, x.shape[len(batch):], keep)
    return jnp.where(mask, x / keep, jnp.zeros_like(x))


def dropout_mask(key: KeyLike, shape: ShapeLike, rate: float, *, batch_axes: int = 0,
                 stream: StreamName | None = None) -> Array:
    """The boolean keep-mask of :func:`dropout` (``True`` = kept), for ``shape``.

    Args:
      key: a single key (typed or raw ``uint32[2]``).
      shape: the full shape, batch axes first.
      rate: the probability of dropping an element, in ``[0, 1]``.
      batch_axes: how many leading axes of ``shape`` index examples (0: one example).
      stream: stream for a raw or JAX-typed key (default ``"threefry"``).

    Returns:
      ``bool[shape]``; one example's mask is ``jax.random.bernoulli(key, 1 - rate, shape)``, and
        element ``i`` of a batch is the mask of ``kf.at(key, i)``, bit for bit.

    Raises:
      TypeError: ``key`` is not a single key, or ``shape`` is not a shape.
      ValueError: ``rate`` is outside ``[0, 1]``, or ``batch_axes`` exceeds the rank of ``shape``.

    Examples:
      >>> import jax, keyfan as kf
      >>> key = kf.key(0)
      >>> mask = kf.transforms.dropout_mask(key, (4, 8), 0.25, batch_axes=1)
      >>> bool((mask[1] == jax.random.bernoulli(kf.at(key, 1), 0.75, (8,))).all())
      True
    """
    batch, event = split_shape("shape", as_shape("shape", shape), batch_axes)
    rate = as_float("rate", rate, lo=0.0, hi=1.0)
    return cast(Array, _mask(single_key(key, stream), batch, event, 1.0 - rate))


def dropout(key: KeyLike, x: ArrayLike, rate: float, *, batch_axes: int = 0, stream: StreamName | None = None) -> Array:
    """Inverted dropout with one mask per example: kept values are scaled by ``1 / (1 - rate)``.

    One example's result is ``where(mask, x / (1 - rate), 0)`` with
    ``mask = jax.random.bernoulli(key, 1 - rate, x.shape)``: the formula of ``flax.linen.Dropout``
    and ``flax.nnx.Dropout``, so the same key gives the same bits. ``rate=0`` returns ``x`` and
    ``rate=1`` returns zeros, without drawing.

    Args:
      key: a single key (typed or raw ``uint32[2]``).
      x: floating array; its first ``batch_axes`` axes index examples.
      rate: the probability of dropping an element, a Python float in ``[0, 1]``.
      batch_axes: number of leading batch axes of ``x`` (0: ``x`` is one example).
      stream: stream for a raw or JAX-typed key (default ``"threefry"``).

    Returns:
      An array like ``x``. With ``batch_axes=1``, row ``i`` equals ``dropout(kf.at(key, i), x[i],
        rate)`` bit for bit (drawn with ``kf.bernoulli``, without materialising per-example keys).

    Raises:
      TypeError: ``key`` is not a single key, or ``x`` is not a floating array.
      ValueError: ``rate`` is outside ``[0, 1]``, or ``batch_axes`` exceeds the rank of ``x``.

    Examples:
      >>> import jax.numpy as jnp, keyfan as kf
      >>> key, x = kf.key(0), jnp.ones((4, 8))
      >>> y = kf.transforms.dropout(key, x, 0.5, batch_axes=1)
      >>> bool((y[2] == kf.transforms.dropout(kf.at(key, 2), x[2], 0.5)).all())
      True
    """
    x, batch, _ = split_batch("x", x, batch_axes)
    floating("x", x)
    rate = as_float("rate", rate, lo=0.0, hi=1.0)
    if rate == 0.0:
        return x
    return cast(Array, _dropout(single_key(key, stream), x, batch, 1.0 - rate))
