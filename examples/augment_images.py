"""Per-example augmentation of an image batch with keyfan.transforms: one flip, crop, brightness
and cutout decision per image, each image's augmentation recomputable alone from its index, and
steps that keep their randomness when the pipeline grows.

Run: .venv/bin/python examples/augment_images.py
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import keyfan as kf
from keyfan import transforms as T

key = kf.named(kf.key(0), "augment")
# 32 images of 32x32x3 with a horizontal gradient, so flips and crops are visible in the pixels.
images = jnp.broadcast_to(jnp.linspace(0.0, 1.0, 32)[None, None, :, None], (32, 32, 32, 3))

augment = T.compose(
    flip=T.flip_left_right,
    crop=partial(T.random_crop, size=32, padding=4),
    light=partial(T.brightness, max_delta=0.2),
)
batch = augment(key, images, batch_axes=1)  # (32, 32, 32, 3)
assert batch.shape == images.shape

# Per-example identity: image i is the single-image pipeline under kf.at(key, i), bit for bit.
for i in (0, 7, 31):
    assert (batch[i] == augment(kf.at(key, i), images[i])).all()

# One decision per image, not one for the whole batch: some images are flipped, some are not.
flipped = np.asarray(T.flip_left_right(key, images, batch_axes=1)[:, 0, 0, 0] == 1.0)
assert 0 < flipped.sum() < len(flipped), flipped

# Growing the pipeline keeps the existing steps' randomness: each step draws from kf.named(key, step).
longer = T.compose(
    flip=T.flip_left_right,
    crop=partial(T.random_crop, size=32, padding=4),
    light=partial(T.brightness, max_delta=0.2),
    erase=partial(T.cutout, size=8),
)
grown = longer(key, images, batch_axes=1)
# Outside each image's cutout square (filled with 0), the flip, crop and brightness are unchanged.
kept = grown != 0.0
assert (jnp.where(kept, grown, 0.0) == jnp.where(kept, batch, 0.0)).all()
assert 0 < (~kept).all(axis=-1).sum() < grown[..., 0].size  # the cutout did erase some pixels

# Under jit, the same bits.
assert (jax.jit(lambda k, x: augment(k, x, batch_axes=1))(key, images) == batch).all()
print(f"augmented {batch.shape[0]} images: {int(flipped.sum())} flipped, each recomputable alone from kf.at(key, i)")
