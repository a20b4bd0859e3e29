"""Per-example stochastic transforms: dropout, noise and image augmentation.

Each transform is written for ONE example with an explicit key, and has a batched form,
``batch_axes=n``, in which the example at batch index ``(i, ...)`` is transformed exactly as the
single call with ``kf.at(key, (i, ...))``, bit for bit (on ``"threefry-legacy"``, with
``kf.fan_out(key, batch)[i]``, since that stream's keys depend on the batch size). Batched
forms draw with keyfan's fast samplers, or run the single-example function through
``kf.vmap(..., randomness="different")``.

Flax interop
------------
``keyfan.transforms.dropout`` computes ``where(bernoulli(key, 1 - rate), x / (1 - rate), 0)``,
the formula of ``flax.linen.Dropout`` and ``flax.nnx.Dropout``, so a Flax dropout layer given
the same key gives the same bits. Three ways to per-example masks:

* linen, explicit keys: ``kf.vmap(lambda x, k: nn.Dropout(rate, deterministic=False).apply({},
  x, rng=k), in_axes=(0, None), randomness="different")(xs, key)``: example ``i`` equals
  ``kf.transforms.dropout(kf.at(key, i), xs[i], rate)``.
* linen, lifted: ``nn.vmap(Module, in_axes=0, variable_axes={"params": None},
  split_rngs={"params": False, "dropout": True})`` applied with ``rngs={"dropout": key}``
  splits ``key`` with ``jax.random.split``, so example ``i``'s stream is ``kf.at(key, i)`` (on a
  ``kf.key``, whatever JAX's flags): its mask equals the unbatched module applied to ``xs[i]``
  with ``rngs={"dropout": kf.at(key, i)}``.
* NNX: ``nnx.split_rngs(splits=n)`` + ``nnx.vmap`` splits the stream's next key
  ``fold_in(k, count)``; or pass one key per example to ``nnx.Dropout.__call__(x, rngs=k)``
  inside ``kf.vmap``, which equals ``kf.transforms.dropout`` on the same keys.
"""

from keyfan.transforms._compose import Compose as Compose
from keyfan.transforms._compose import compose as compose
from keyfan.transforms._crop import cutout as cutout
from keyfan.transforms._crop import random_crop as random_crop
from keyfan.transforms._dropout import dropout as dropout
from keyfan.transforms._dropout import dropout_mask as dropout_mask
from keyfan.transforms._image import brightness as brightness
from keyfan.transforms._image import contrast as contrast
from keyfan.transforms._image import flip_left_right as flip_left_right
from keyfan.transforms._image import flip_up_down as flip_up_down
from keyfan.transforms._noise import gaussian_noise as gaussian_noise

__all__ = [
    "Compose",
    "brightness",
    "compose",
    "contrast",
    "cutout",
    "dropout",
    "dropout_mask",
    "flip_left_right",
    "flip_up_down",
    "gaussian_noise",
    "random_crop",
]
