"""Random crops (with optional padding) and cutout of HWC images, one position per example."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.typing import ArrayLike

from keyfan._checks import as_float, as_shape
from keyfan.sample import randint
from keyfan.transforms._common import single_key
from keyfan.transforms._image import image_batch
from keyfan.typing import KeyLike, ShapeLike, StreamName

__all__ = ["cutout", "random_crop"]


def _pair(name: str, value: Any) -> tuple[int, int]:
    """An int or a pair of ints as ``(height, width)``."""
    dims = as_shape(name, value)
    if len(dims) == 1:
        return dims[0], dims[0]
    if len(dims) != 2:
        raise ValueError(f"{name} must be an int or a (height, width) pair, got {value!r}.")
    return dims[0], dims[1]


def _positions(key: Array, batch: tuple[int, ...], span: tuple[int, int]) -> Array:
    """Per example, two ints: row in ``[0, span[0])`` and column in ``[0, span[1])``."""
    maxval = np.array(span, np.int32)
    if batch:
        return randint(key, batch=batch, shape=(2,), minval=0, maxval=maxval)
    return jax.random.randint(key, (2,), 0, maxval)


@partial(jax.jit, static_argnames=("batch", "size", "padding"))
def _crop(key: Array, image: Array, batch: tuple[int, ...], size: tuple[int, int],
          padding: tuple[int, int]) -> Array:
    nb = len(batch)
    (py, px), (h, w) = padding, size
    if py or px:
        image = jnp.pad(image, [(0, 0)] * nb + [(py, py), (px, px), (0, 0)])
    height, width, channels = image.shape[nb:]
    offsets = _positions(key, batch, (height - h + 1, width - w + 1))

    def one(img: Array, offset: Array) -> Array:
        return lax.dynamic_slice(img, (offset[0], offset[1], 0), (h, w, channels))

    if not batch:
        return one(image, offsets)
    flat = jax.vmap(one)(image.reshape(-1, height, width, channels), offsets.reshape(-1, 2))
    return flat.reshape((*batch, h, w, channels))


def random_crop(key: KeyLike, image: ArrayLike, size: ShapeLike, *, padding: int | Sequence[int] = 0,
                batch_axes: int = 0, stream: StreamName | None = None) -> Array:
    """Crops a random ``size`` window, after zero-padding each side by ``padding``, per example.

    Args:
      key: a single key (typed or raw ``uint32[2]``).
      image: ``(H, W, C)``, or ``(B, H, W, C)`` with ``batch_axes=1``; any dtype.
      size: the crop ``(h, w)`` (or an int for a square), at most the padded image size.
      padding: zeros added on each side, an int or ``(pad_h, pad_w)`` (the CIFAR recipe is
        ``size=32, padding=4``).
      batch_axes: number of leading batch axes (0: one image).
      stream: stream for a raw or JAX-typed key (default ``"threefry"``).

    Returns:
      ``(h, w, C)`` per example. The top-left corner is
        ``jax.random.randint(key, (2,), 0, (H + 2 * pad_h - h + 1, W + 2 * pad_w - w + 1))``;
        example ``i`` of a batch uses ``kf.at(key, i)`` (drawn with ``kf.randint``).

    Raises:
      TypeError: ``key`` is not a single key, or ``image`` is not an array.
      ValueError: ``image`` is not ``(H, W, C)`` per example for the given ``batch_axes``, or
        ``size``/``padding`` are negative or the crop is larger than the padded image.

    Examples:
      >>> import jax.numpy as jnp, keyfan as kf
      >>> images = jnp.ones((8, 32, 32, 3))
      >>> kf.transforms.random_crop(kf.key(0), images, 32, padding=4, batch_axes=1).shape
      (8, 32, 32, 3)
    """
    image, batch = image_batch("image", image, batch_axes)
    h, w = _pair("size", size)
    py, px = _pair("padding", padding)
    height, width = image.shape[-3] + 2 * py, image.shape[-2] + 2 * px
    if h > height or w > width:
        raise ValueError(
            f"size {(h, w)} is larger than the padded image ({height}, {width}) (image "
            f"{image.shape[-3:]} with padding {(py, px)}); use a smaller size or more padding."
        )
    return cast(Array, _crop(single_key(key, stream), image, batch, (h, w), (py, px)))


@partial(jax.jit, static_argnames=("batch", "size", "fill"))
def _cutout(key: Array, image: Array, batch: tuple[int, ...], size: tuple[int, int],
            fill: float) -> Array:
    height, width = image.shape[-3], image.shape[-2]
    centers = _positions(key, batch, (height, width))
    top = (centers[..., 0] - size[0] // 2)[..., None, None]
    left = (centers[..., 1] - size[1] // 2)[..., None, None]
    rows = lax.broadcasted_iota(np.int32, (height, 1), 0)
    cols = lax.broadcasted_iota(np.int32, (1, width), 1)
    inside = (rows >= top) & (rows < top + size[0]) & (cols >= left) & (cols < left + size[1])
    return jnp.where(inside[..., None], jnp.asarray(fill, image.dtype), image)


def cutout(key: KeyLike, image: ArrayLike, size: ShapeLike, *, fill: ArrayLike = 0.0, batch_axes: int = 0,
           stream: StreamName | None = None) -> Array:
    """Fills a ``size`` rectangle at a random centre with ``fill``, per example (DeVries & Taylor).

    The centre is uniform over the image, so the rectangle may be cut off at the border.

    Args:
      key: a single key (typed or raw ``uint32[2]``).
      image: ``(H, W, C)``, or ``(B, H, W, C)`` with ``batch_axes=1``; any dtype.
      size: the rectangle ``(h, w)`` (or an int for a square).
      fill: the value written, a Python float (cast to the image dtype).
      batch_axes: number of leading batch axes (0: one image).
      stream: stream for a raw or JAX-typed key (default ``"threefry"``).

    Returns:
      An array like ``image``. The centre is ``jax.random.randint(key, (2,), 0, (H, W))``, the
        rectangle rows ``[cy - h // 2, cy - h // 2 + h)`` and columns likewise; example ``i`` of a
        batch uses ``kf.at(key, i)``.

    References:
      T. DeVries, G. W. Taylor, "Improved Regularization of Convolutional Neural Networks with
      Cutout", 2017.

    Raises:
      TypeError: ``key`` is not a single key, or ``image`` is not an array.
      ValueError: ``image`` is not ``(H, W, C)`` per example for the given ``batch_axes``, or
        ``size`` is negative.

    Examples:
      >>> import jax.numpy as jnp, keyfan as kf
      >>> key, images = kf.key(0), jnp.ones((2, 8, 8, 1))
      >>> out = kf.transforms.cutout(key, images, 4, batch_axes=1)
      >>> bool((out[1] == kf.transforms.cutout(kf.at(key, 1), images[1], 4)).all()), bool((out == 0).any())
      (True, True)
    """
    image, batch = image_batch("image", image, batch_axes)
    h, w = _pair("size", size)
    fill = as_float("fill", fill)
    return cast(Array, _cutout(single_key(key, stream), image, batch, (h, w), fill))
