"""Random augmentation of HWC images: flips, brightness and contrast, one decision per example.

Every function takes one image ``(H, W, C)`` or, with ``batch_axes=1``, a batch ``(B, H, W, C)``
whose example ``i`` is augmented exactly as the single image ``images[i]`` with ``kf.at(key, i)``:
each example gets its own decision. (dm-pix's ``random_flip_left_right`` on a batched image makes
ONE decision for the whole batch; vmap it over split keys for per-example flips.)
"""

from __future__ import annotations

from functools import partial
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from keyfan._checks import as_float
from keyfan.sample import bernoulli, uniform
from keyfan.transforms._common import drawn, floating, single_key, split_batch
from keyfan.typing import KeyLike, StreamName

__all__ = ["brightness", "contrast", "flip_left_right", "flip_up_down", "image_batch"]

_HWC = "an HWC image (height, width, channels)"


def image_batch(name: str, image: Any, batch_axes: Any) -> tuple[Array, tuple[int, ...]]:
    """``image`` checked to be HWC per example; returns it and its batch shape."""
    image, batch, _ = split_batch(name, image, batch_axes, event_rank=3, event_name=_HWC)
    return image, batch


def _expand(per_example: Array, batch: tuple[int, ...]) -> Array:
    """One value per example, shaped to broadcast against ``(*batch, H, W, C)``."""
    return per_example.reshape((*batch, 1, 1, 1))


@partial(jax.jit, static_argnames=("batch", "axis", "p"))
def _flip(key: Array, image: Array, batch: tuple[int, ...], axis: int, p: float) -> Array:
    decide = bernoulli(key, batch=batch, shape=(), p=p) if batch else jax.random.bernoulli(key, p)
    flipped = jnp.flip(image, axis=len(batch) + axis)
    return jnp.where(_expand(decide, batch), flipped, image)


def flip_left_right(key: KeyLike, image: ArrayLike, *, p: float = 0.5, batch_axes: int = 0,
                    stream: StreamName | None = None) -> Array:
    """Mirrors the image horizontally (the W axis) with probability ``p``, per example.

    Args:
      key: a single key (typed or raw ``uint32[2]``).
      image: ``(H, W, C)``, or ``(B, H, W, C)`` with ``batch_axes=1``; any dtype.
      p: the probability of flipping, a Python float in ``[0, 1]``.
      batch_axes: number of leading batch axes (0: one image).
      stream: stream for a raw or JAX-typed key (default ``"threefry"``).

    Returns:
      An array like ``image``. The decision is ``jax.random.bernoulli(key, p)``; for a batch,
        example ``i`` uses ``kf.at(key, i)`` (drawn with ``kf.bernoulli``), so examples flip
        independently, unlike dm-pix's one decision per batched call.

    Raises:
      TypeError: ``key`` is not a single key, or ``image`` is not an array.
      ValueError: ``image`` is not ``(H, W, C)`` per example for the given ``batch_axes``, or
        ``p`` is outside ``[0, 1]``.

    Examples:
      >>> import jax.numpy as jnp, keyfan as kf
      >>> images = jnp.arange(8.0).reshape(4, 1, 2, 1)  # four 1x2 images
      >>> out = kf.transforms.flip_left_right(kf.key(0), images, batch_axes=1)
      >>> out[:, 0, :, 0].tolist()  # images 1 and 3 flipped, 0 and 2 not
      [[0.0, 1.0], [3.0, 2.0], [4.0, 5.0], [7.0, 6.0]]
    """
    image, batch = image_batch("image", image, batch_axes)
    p = as_float("p", p, lo=0.0, hi=1.0)
    return cast(Array, _flip(single_key(key, stream), image, batch, 1, p))


def flip_up_down(key: KeyLike, image: ArrayLike, *, p: float = 0.5, batch_axes: int = 0,
                 stream: StreamName | None = None) -> Array:
    """Mirrors the image vertically (the H axis) with probability ``p``, per example.

    Arguments and guarantees as :func:`flip_left_right`.

    Args:
      key: a single key (typed or raw ``uint32[2]``).
      image: ``(H, W, C)``, or ``(B, H, W, C)`` with ``batch_axes=1``; any dtype.
      p: the probability of flipping, a Python float in ``[0, 1]``.
      batch_axes: number of leading batch axes (0: one image).
      stream: stream for a raw or JAX-typed key (default ``"threefry"``).

    Returns:
      An array like ``image``: example ``i`` of a batch is flipped iff
        ``jax.random.bernoulli(kf.at(key, i), p)``, exactly as :func:`flip_left_right` decides.

    Raises:
      TypeError: ``key`` is not a single key, or ``image`` is not an array.
      ValueError: ``image`` is not ``(H, W, C)`` per example for the given ``batch_axes``, or
        ``p`` is outside ``[0, 1]``.

    Examples:
      >>> import jax.numpy as jnp, keyfan as kf
      >>> images = jnp.arange(8.0).reshape(4, 2, 1, 1)  # four 2x1 images
      >>> out = kf.transforms.flip_up_down(kf.key(0), images, batch_axes=1)
      >>> out[:, :, 0, 0].tolist()  # the same decisions as flip_left_right with this key
      [[0.0, 1.0], [3.0, 2.0], [4.0, 5.0], [7.0, 6.0]]
    """
    image, batch = image_batch("image", image, batch_axes)
    p = as_float("p", p, lo=0.0, hi=1.0)
    return cast(Array, _flip(single_key(key, stream), image, batch, 0, p))


def _compute_dtype(image: Array) -> np.dtype:
    return np.dtype(jnp.promote_types(image.dtype, jnp.float32))


def _uniform(key: Array, batch: tuple[int, ...], dtype: np.dtype, lo: float, hi: float) -> Array:
    if batch:
        return _expand(drawn(lambda k: uniform(k, batch=batch, shape=(), dtype=dtype, minval=lo, maxval=hi), key),
                       batch)
    return drawn(lambda k: jax.random.uniform(k, (), dtype, lo, hi), key)


@partial(jax.jit, static_argnames=("batch", "max_delta"))
def _brightness(key: Array, image: Array, batch: tuple[int, ...], max_delta: float) -> Array:
    dtype = _compute_dtype(image)
    delta = _uniform(key, batch, dtype, -max_delta, max_delta)
    return (image.astype(dtype) + delta).astype(image.dtype)


def brightness(key: KeyLike, image: ArrayLike, max_delta: float, *, batch_axes: int = 0,
               stream: StreamName | None = None) -> Array:
    """Adds a random ``delta ~ U(-max_delta, max_delta)`` to every pixel, one delta per example.

    The additive convention of dm-pix's ``random_brightness`` (torchvision multiplies instead).

    Args:
      key: a single key (typed or raw ``uint32[2]``).
      image: floating ``(H, W, C)``, or ``(B, H, W, C)`` with ``batch_axes=1``.
      max_delta: a Python float ``>= 0``.
      batch_axes: number of leading batch axes (0: one image).
      stream: stream for a raw or JAX-typed key (default ``"threefry"``).

    Returns:
      An array like ``image`` (not clipped). The delta is drawn in float32 (float64 for float64
        images) with ``jax.random.uniform``; example ``i`` of a batch uses ``kf.at(key, i)``.

    Raises:
      TypeError: ``key`` is not a single key, or ``image`` is not an array.
      ValueError: ``image`` is not ``(H, W, C)`` per example for the given ``batch_axes``, or
        ``max_delta`` is negative or not finite, or ``image`` is not floating.

    Examples:
      >>> import jax.numpy as jnp, keyfan as kf
      >>> key, images = kf.key(0), jnp.full((4, 8, 8, 3), 0.5)
      >>> out = kf.transforms.brightness(key, images, 0.2, batch_axes=1)
      >>> bool((out[1] == kf.transforms.brightness(kf.at(key, 1), images[1], 0.2)).all())
      True
    """
    image, batch = image_batch("image", image, batch_axes)
    floating("image", image)
    max_delta = as_float("max_delta", max_delta, lo=0.0)
    return cast(Array, _brightness(single_key(key, stream), image, batch, max_delta))


def _channel_mean(image: Array) -> Array:
    """Per-channel mean over ``H, W`` as a fixed pairwise sum of elementwise adds.

    ``jnp.mean`` lets XLA pick the summation order, which differs between a batched and a single
    image; this order is fixed, so an example's mean has the same bits alone or in a batch.
    """
    *lead, h, w, c = image.shape
    n = h * w
    x = image.reshape(*lead, n, c)
    size = 1 << max(n - 1, 0).bit_length()
    x = jnp.pad(x, [(0, 0)] * len(lead) + [(0, size - n), (0, 0)])
    while size > 1:
        size //= 2
        x = x[..., :size, :] + x[..., size:, :]
    return (x / n).reshape(*lead, 1, 1, c)


@partial(jax.jit, static_argnames=("batch", "lower", "upper"))
def _contrast(key: Array, image: Array, batch: tuple[int, ...], lower: float, upper: float) -> Array:
    dtype = _compute_dtype(image)
    factor = _uniform(key, batch, dtype, lower, upper)
    x = image.astype(dtype)
    mean = _channel_mean(x)
    return ((x - mean) * factor + mean).astype(image.dtype)


def contrast(key: KeyLike, image: ArrayLike, lower: float, upper: float, *, batch_axes: int = 0,
             stream: StreamName | None = None) -> Array:
    """Scales each channel's deviation from its mean by ``factor ~ U(lower, upper)``, per example.

    ``(image - mean) * factor + mean`` with the per-channel mean over ``H, W``, as dm-pix's
    ``random_contrast``. The mean is summed in a fixed pairwise order, so a batched call gives
    each example the same bits as the single call.

    Args:
      key: a single key (typed or raw ``uint32[2]``).
      image: floating ``(H, W, C)``, or ``(B, H, W, C)`` with ``batch_axes=1``.
      lower, upper: Python floats with ``0 <= lower <= upper``.
      batch_axes: number of leading batch axes (0: one image).
      stream: stream for a raw or JAX-typed key (default ``"threefry"``).

    Returns:
      An array like ``image`` (not clipped); example ``i`` of a batch uses ``kf.at(key, i)``.

    Raises:
      TypeError: ``key`` is not a single key, or ``image`` is not an array.
      ValueError: ``image`` is not ``(H, W, C)`` per example for the given ``batch_axes``, or
        ``lower``/``upper`` are not finite with ``0 <= lower <= upper``, or ``image`` is not
        floating.

    Examples:
      >>> import jax.numpy as jnp, keyfan as kf
      >>> key, images = kf.key(0), jnp.linspace(0, 1, 4 * 48).reshape(4, 4, 4, 3)
      >>> out = kf.transforms.contrast(key, images, 0.5, 1.5, batch_axes=1)
      >>> bool((out[3] == kf.transforms.contrast(kf.at(key, 3), images[3], 0.5, 1.5)).all())
      True
    """
    image, batch = image_batch("image", image, batch_axes)
    floating("image", image)
    lower = as_float("lower", lower, lo=0.0)
    upper = as_float("upper", upper, lo=lower)
    return cast(Array, _contrast(single_key(key, stream), image, batch, lower, upper))
