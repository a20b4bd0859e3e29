"""The reference recipes: the per-example randomness patterns JAX users learn first.

Each function is the canonical JAX pattern, written once, exactly, with its arguments checked.
They are the ground truth the rest of keyfan is tested against, and each docstring names the
pitfall it avoids. The pitfalls themselves are demonstrated by :mod:`keyfan._pitfalls`.

Seeds and sizes follow one rule for every recipe: they may arrive as Python ints, floats that
are whole numbers, NumPy scalars or 0-d arrays. A non-whole, NaN or infinite value, a negative
size, a boolean, or a seed outside ``[-2**31, 2**32)`` (which ``jax.random.PRNGKey`` would
silently truncate) raises ``ValueError`` or ``TypeError`` naming the argument.
"""

from __future__ import annotations

from typing import Any, cast

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from keyfan._checks import as_float, as_int, as_size, is_typed_key
from keyfan._extras import require

__all__ = [
    "add_noise",
    "augment_batch",
    "augment_image",
    "batched_init_param_count",
    "check_seed",
    "deterministic_batch",
    "forward_batch",
    "forward_single",
    "init_mlp_params",
    "key_grid",
    "model_step",
    "nested_normal",
    "nn_vmap_forward",
    "per_example_dropout",
    "sample_and_transform",
    "sample_many",
]

SEED_RANGE = (-(2**31), 2**32)
"""Seeds ``PRNGKey`` takes without truncation in JAX's default 32-bit mode."""

CROP = 224
"""Side of the square crop made by :func:`augment_image`."""

MAX_CROP_OFFSET = 8
"""Crop offsets are drawn in ``[0, MAX_CROP_OFFSET)`` on each axis."""


def check_seed(seed: ArrayLike, name: str = "seed") -> int:
    """``seed`` as an int in ``[-2**31, 2**32)``, or a ``ValueError``/``TypeError`` naming it.

    Args:
      seed: an int, a whole float, a NumPy integer scalar or a 0-d array.
      name: the argument's name, for the error message.

    Returns:
      The seed as a Python int.

    Raises:
      TypeError: an argument is not a number (a string, a bool, a key).
      ValueError: a non-integral, NaN or infinite value, a negative size, or a seed outside
        ``[-2**31, 2**32)``.

    Examples:
      >>> from keyfan.recipes import check_seed
      >>> check_seed(7.0)
      7
      >>> check_seed(2**40)
      Traceback (most recent call last):
      ...
      ValueError: seed must be less than 4294967296, got 1099511627776.
    """
    return as_int(name, seed, lo=SEED_RANGE[0], hi=SEED_RANGE[1])


def _check_single_key(name: str, key: Any) -> Array:
    """A single JAX key (typed, or raw uint32[2] data), or a ``TypeError``/``ValueError``."""
    dtype = getattr(key, "dtype", None)
    if is_typed_key(key):
        if key.shape != ():
            raise ValueError(f"{name} must be a single key, got a key array of shape {key.shape}.")
        return cast(Array, key)
    if dtype is not None and dtype == jnp.uint32 and getattr(key, "shape", None) == (2,):
        return cast(Array, key)
    raise TypeError(
        f"{name} must be a single JAX key (jax.random.key(seed) or jax.random.PRNGKey(seed)), "
        f"got {type(key).__name__}" + (f" of shape {key.shape} and dtype {dtype}." if dtype is not None else ".")
    )


def _check_rate(name: str, p: Any) -> float:
    return as_float(name, p, lo=0.0, hi=1.0, hi_inclusive=False)


# -- 1. Split then vmap -----------------------------------------------------------------------

def deterministic_batch(seed: ArrayLike, batch_size: ArrayLike, n: ArrayLike) -> Array:
    """One independent standard-normal vector per example: split one key, then ``vmap``.

    ``keys = jax.random.split(jax.random.PRNGKey(seed), batch_size)``, then
    ``jax.vmap(lambda k: jax.random.normal(k, (n,)))(keys)``.

    Pitfall avoided: ``jax.random.normal(key, (batch_size, n))`` is ONE draw of a big shape, not
    a batch of per-key draws; and a key shared with ``in_axes=None`` gives every row the same
    values. The split happens outside the vmapped function, never inside it.

    Args:
      seed: an integer seed in ``[-2**31, 2**32)`` (see :func:`check_seed`).
      batch_size: the number of examples ``B``.
      n: the length of each example's vector.

    Returns:
      float32 array of shape ``(batch_size, n)``; rows are pairwise distinct (for ``n >= 1``).

    Raises:
      TypeError: an argument is not a number (a string, a bool, a key).
      ValueError: a non-integral, NaN or infinite value, a negative size, or a seed outside
        ``[-2**31, 2**32)``.

    Examples:
      >>> from keyfan.recipes import deterministic_batch
      >>> deterministic_batch(0, 8, 4).shape
      (8, 4)
    """
    seed = check_seed(seed)
    batch_size = as_size("batch_size", batch_size)
    n = as_size("n", n)
    base = jax.random.PRNGKey(seed)
    keys = jax.random.split(base, batch_size)
    return jax.vmap(lambda k: jax.random.normal(k, (n,)))(keys)


# -- 2. Batched init --------------------------------------------------------------------------

def batched_init_param_count(seed: ArrayLike, num_inits: ArrayLike, features: ArrayLike) -> Array:
    """``num_inits`` independent initialisations of ``nn.Dense(features)`` in one ``vmap``.

    ``stacked = jax.vmap(model.init, in_axes=(0, None))(keys, jnp.ones((4,)))``.

    Pitfall avoided: without ``in_axes=(0, None)`` vmap maps the dummy input too (and fails, or
    silently maps a batch you did not mean to have).

    Needs the ``flax`` extra.

    Args:
      seed: an integer seed in ``[-2**31, 2**32)``.
      num_inits: the number of initialisations.
      features: the layer's output features.

    Returns:
      float32 ``[num_inits, features, stacked kernel's leading size]``; the third entry equals
        the first, showing one kernel per initialisation.

    Raises:
      TypeError: an argument is not a number (a string, a bool, a key).
      ValueError: a non-integral, NaN or infinite value, a negative size, or a seed outside
        ``[-2**31, 2**32)``.
      ImportError: Flax is not installed (the message names the ``flax`` extra).

    Examples:
      >>> from keyfan.recipes import batched_init_param_count
      >>> batched_init_param_count(0, 5, 3).tolist()
      [5.0, 3.0, 5.0]
    """
    seed = check_seed(seed)
    num_inits = as_size("num_inits", num_inits)
    features = as_int("features", features, lo=1)
    nn = require("flax.linen", "keyfan.recipes.batched_init_param_count")
    model = nn.Dense(features=features)
    keys = jax.random.split(jax.random.PRNGKey(seed), num_inits)
    stacked = jax.vmap(model.init, in_axes=(0, None))(keys, jnp.ones((4,)))
    return jnp.array([float(num_inits), float(features), float(stacked["params"]["kernel"].shape[0])])


# -- 3. Lifted vmap with shared parameters ----------------------------------------------------

def nn_vmap_forward(seed: ArrayLike, x_batch: ArrayLike, features: ArrayLike) -> Array:
    """A ``Dense`` layer written for one example, lifted over a batch with shared parameters.

    ``nn.vmap(nn.Dense, in_axes=0, out_axes=0, variable_axes={"params": None},
    split_rngs={"params": False})``: the kernel ``(in_dim, features)`` and bias ``(features,)``
    have no batch axis, so the output equals a plain ``nn.Dense`` applied to the batch.

    Pitfall avoided: ``variable_axes={"params": 0}`` with ``split_rngs={"params": True}`` would
    give every example its own, independently initialised layer.

    Args:
      seed: init seed.
      x_batch: float array of shape ``(B, in_dim)``.
      features: output features ``F``.

    Returns:
      The outputs flattened to shape ``(B * F,)``.

    Needs the ``flax`` extra.

    Raises:
      TypeError: an argument is not a number (a string, a bool, a key).
      ValueError: a non-integral, NaN or infinite value, a negative size, or a seed outside
        ``[-2**31, 2**32)``.
      ImportError: Flax is not installed (the message names the ``flax`` extra).

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan.recipes import nn_vmap_forward
      >>> nn_vmap_forward(0, jnp.ones((4, 5)), 3).shape
      (12,)
    """
    seed = check_seed(seed)
    features = as_int("features", features, lo=1)
    x_batch = jnp.asarray(x_batch)
    if x_batch.ndim != 2 or not jnp.issubdtype(x_batch.dtype, jnp.floating):
        raise ValueError(
            f"x_batch must be a float array of shape (B, in_dim), got shape {x_batch.shape} "
            f"and dtype {x_batch.dtype}."
        )
    nn = require("flax.linen", "keyfan.recipes.nn_vmap_forward")
    vmapped_dense = nn.vmap(nn.Dense, in_axes=0, out_axes=0, variable_axes={"params": None},
                            split_rngs={"params": False})
    model = vmapped_dense(features=features)
    variables = model.init(jax.random.PRNGKey(seed), x_batch)
    return cast(Array, model.apply(variables, x_batch).reshape(-1))


# -- 4. Per-example noise and dropout in a jitted step ----------------------------------------

def add_noise(x: Array, key: Array, scale: float = 0.1) -> Array:
    """One example plus Gaussian noise: ``x + scale * normal(key, x.shape)``.

    Meant to be vmapped with one key per example (see :func:`model_step`). ``x`` is a float
    array of any shape; the result has the same shape and dtype.

    Pitfall avoided: ``vmap(add_noise, in_axes=(0, None))(xs, key)`` broadcasts the key, so every
    example gets the same noise (:func:`keyfan._pitfalls.broadcast_key` shows it); map the keys.

    Args:
      x: a float array of any shape (one example).
      key: one key (typed, or raw ``uint32[2]``).
      scale: the noise's standard deviation.

    Returns:
      ``x + scale * normal(key, x.shape)``, of ``x``'s shape and dtype.

    Raises:
      TypeError: ``key`` is not a single JAX key (``jax.random.key`` or ``PRNGKey`` data).
      ValueError: ``key`` is an array of keys, not one.
        Also a non-finite ``scale``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from keyfan.recipes import add_noise
      >>> xs = jnp.zeros((4, 3))
      >>> ys = jax.vmap(add_noise)(xs, jax.random.split(jax.random.PRNGKey(0), 4))
      >>> bool((ys[0] != ys[1]).any())
      True
    """
    key = _check_single_key("key", key)
    scale = as_float("scale", scale)
    return x + scale * jax.random.normal(key, jnp.shape(x), jnp.result_type(x))


def per_example_dropout(x: Array, key: Array, p: float = 0.5) -> Array:
    """Inverted dropout on one example: ``mask * x / (1 - p)`` with ``mask ~ Bernoulli(1 - p)``.

    The expectation of the output equals ``x``. Meant to be vmapped with one key per example, so
    two examples get different masks (a shared key would drop the same units everywhere).

    Args:
      x: float array of any shape.
      key: one key.
      p: drop rate in ``[0, 1)``.

    Returns:
      An array of ``x``'s shape: zeros where dropped, ``x / (1 - p)`` elsewhere.

    Raises:
      TypeError: ``key`` is not a single JAX key (``jax.random.key`` or ``PRNGKey`` data).
      ValueError: ``key`` is an array of keys, not one.
        Also ``p`` outside ``[0, 1)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from keyfan.recipes import per_example_dropout
      >>> y = per_example_dropout(jnp.ones(8), jax.random.PRNGKey(0), p=0.5)
      >>> sorted(set(y.tolist())) == [0.0, 2.0]
      True
    """
    key = _check_single_key("key", key)
    p = _check_rate("p", p)
    mask = jax.random.bernoulli(key, 1.0 - p, jnp.shape(x))
    return mask * x / (1.0 - p)


@jax.jit
def _model_step(params: dict[str, Array], x_batch: Array, key: Array) -> Array:
    keys = jax.random.split(key, x_batch.shape[0])

    def single(x: Array, k: Array) -> Array:
        noise_key, dropout_key = jax.random.split(k)
        h = per_example_dropout(add_noise(x, noise_key), dropout_key)
        return h @ params["w"] + params["b"]

    return jax.vmap(single)(x_batch, keys)


def model_step(params: dict[str, Array], x_batch: Array, key: Array) -> Array:
    """A jitted linear step with per-example noise and dropout: one split key per example.

    Each example ``i`` splits its own key ``keys[i]`` into a noise key and a dropout key, adds
    Gaussian noise (scale 0.1), applies inverted dropout (rate 0.5), then ``h @ w + b``.

    Pitfall avoided: a Python loop over the keys would unroll under ``jit``; ``vmap`` compiles
    one program whatever the batch size.

    Args:
      params: ``{"w": (in_dim, out_dim), "b": (out_dim,)}`` float arrays.
      x_batch: float array ``(B, in_dim)``.
      key: one key.

    Returns:
      float array ``(B, out_dim)``.

    Raises:
      TypeError: ``key`` is not a single JAX key (``jax.random.key`` or ``PRNGKey`` data).
      ValueError: ``key`` is an array of keys, not one.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from keyfan.recipes import model_step
      >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
      >>> model_step(params, jnp.ones((6, 3)), jax.random.PRNGKey(0)).shape
      (6, 2)
    """
    key = _check_single_key("key", key)
    x_batch = jnp.asarray(x_batch)
    if x_batch.ndim != 2:
        raise ValueError(f"x_batch must have shape (B, in_dim), got {x_batch.shape}.")
    if set(params) != {"w", "b"}:
        raise ValueError(f"params must have exactly the keys 'w' and 'b', got {sorted(params)}.")
    return cast(Array, _model_step(params, x_batch, key))


# -- 5. Shared parameters, per-example inputs and keys ----------------------------------------

def init_mlp_params(key: Array, in_dim: ArrayLike, hidden: ArrayLike, out_dim: ArrayLike) -> dict[str, Array]:
    """Parameters of the 2-layer MLP of :func:`forward_single`.

    Args:
      key: one key; it is split in two, one half per weight matrix.
      in_dim: input size.
      hidden: hidden layer size.
      out_dim: output size.

    Returns:
      ``{"w1": (in_dim, hidden), "b1": (hidden,), "w2": (hidden, out_dim), "b2": (out_dim,)}``:
        LeCun-normal weights, zero biases, float32.

    Raises:
      TypeError: ``key`` is not a single JAX key (``jax.random.key`` or ``PRNGKey`` data).
      ValueError: ``key`` is an array of keys, not one.
        Also a negative or non-integral size.

    Examples:
      >>> import jax
      >>> from keyfan.recipes import init_mlp_params
      >>> {k: v.shape for k, v in init_mlp_params(jax.random.PRNGKey(0), 4, 16, 2).items()}
      {'w1': (4, 16), 'b1': (16,), 'w2': (16, 2), 'b2': (2,)}
    """
    key = _check_single_key("key", key)
    in_dim = as_int("in_dim", in_dim, lo=1)
    hidden = as_int("hidden", hidden, lo=1)
    out_dim = as_int("out_dim", out_dim, lo=1)
    k1, k2 = jax.random.split(key)
    init = jax.nn.initializers.lecun_normal()
    return {
        "w1": init(k1, (in_dim, hidden), jnp.float32),
        "b1": jnp.zeros((hidden,), jnp.float32),
        "w2": init(k2, (hidden, out_dim), jnp.float32),
        "b2": jnp.zeros((out_dim,), jnp.float32),
    }


FORWARD_DROPOUT = 0.3
"""Dropout rate of :func:`forward_single`."""


def forward_single(params: dict[str, Array], x: Array, key: Array) -> Array:
    """A 2-layer MLP on ONE example with dropout: ``relu(x @ w1 + b1)``, dropout, ``@ w2 + b2``.

    The key is split in two; the first half drives the dropout (rate 0.3, inverted). Batch it with
    ``jax.vmap(forward_single, in_axes=(None, 0, 0))``: shared params, per-example inputs and
    keys (see :func:`forward_batch`).

    Pitfall avoided: ``in_axes=0`` for the params would need (and map over) a stacked copy per
    example, and ``None`` for the key would give every example the same dropout mask.

    Args:
      params: from :func:`init_mlp_params`.
      x: float array ``(in_dim,)``.
      key: one key.

    Returns:
      float array ``(out_dim,)``.

    Raises:
      TypeError: ``key`` is not a single JAX key (``jax.random.key`` or ``PRNGKey`` data).
      ValueError: ``key`` is an array of keys, not one.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from keyfan.recipes import forward_single, init_mlp_params
      >>> params = init_mlp_params(jax.random.PRNGKey(0), 4, 16, 2)
      >>> forward_single(params, jnp.ones(4), jax.random.PRNGKey(1)).shape
      (2,)
    """
    dropout_key, _ = jax.random.split(_check_single_key("key", key))
    h = jax.nn.relu(x @ params["w1"] + params["b1"])
    keep = jax.random.bernoulli(dropout_key, 1.0 - FORWARD_DROPOUT, h.shape)
    h = keep * h / (1.0 - FORWARD_DROPOUT)
    return h @ params["w2"] + params["b2"]


def forward_batch(params: dict[str, Array], x_batch: Array, key: Array) -> Array:
    """:func:`forward_single` over a batch: ``split(key, B)`` then
    ``vmap(forward_single, in_axes=(None, 0, 0))``.

    Args:
      params: from :func:`init_mlp_params`, shared by every example.
      x_batch: float array ``(B, in_dim)``.
      key: one key, split into one key per example.

    Returns:
      float array ``(B, out_dim)``; row ``i`` equals
        ``forward_single(params, x_batch[i], split(key, B)[i])``.

    Raises:
      TypeError: ``key`` is not a single JAX key (``jax.random.key`` or ``PRNGKey`` data).
      ValueError: ``key`` is an array of keys, not one.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from keyfan.recipes import forward_batch, init_mlp_params
      >>> params = init_mlp_params(jax.random.PRNGKey(0), 4, 16, 2)
      >>> forward_batch(params, jnp.ones((6, 4)), jax.random.PRNGKey(1)).shape
      (6, 2)
    """
    key = _check_single_key("key", key)
    x_batch = jnp.asarray(x_batch)
    if x_batch.ndim != 2:
        raise ValueError(f"x_batch must have shape (B, in_dim), got {x_batch.shape}.")
    keys = jax.random.split(key, x_batch.shape[0])
    return jax.vmap(forward_single, in_axes=(None, 0, 0))(params, x_batch, keys)


# -- 6. Image augmentation --------------------------------------------------------------------

def _check_image(name: str, image: Any, batched: bool) -> Array:
    image = jnp.asarray(image)
    rank = 4 if batched else 3
    layout = "(B, H, W, 3)" if batched else "(H, W, 3)"
    if image.ndim != rank or image.shape[-1] != 3 or not jnp.issubdtype(image.dtype, jnp.floating):
        raise ValueError(f"{name} must be a float array of shape {layout}, got shape {image.shape} "
                         f"and dtype {image.dtype}.")
    h, w = image.shape[-3], image.shape[-2]
    if h < CROP or w < CROP:
        raise ValueError(f"{name} must be at least {CROP}x{CROP} (H, W) to crop to {CROP}x{CROP}, "
                         f"got {h}x{w}; {CROP + MAX_CROP_OFFSET}x{CROP + MAX_CROP_OFFSET} lets every offset act.")
    return cast(Array, image)


def _augment(key: Array, image: Array) -> Array:
    flip_key, brightness_key, crop_key = jax.random.split(key, 3)
    flip = jax.random.bernoulli(flip_key)
    image = jnp.where(flip, image[:, ::-1, :], image)
    image = image * jax.random.uniform(brightness_key, minval=0.8, maxval=1.2)
    offsets = jax.random.randint(crop_key, (2,), 0, MAX_CROP_OFFSET)
    image = jax.lax.dynamic_slice(image, (offsets[0], offsets[1], 0), (CROP, CROP, 3))
    return jnp.clip(image, 0.0, 1.0)


def augment_image(key: Array, image: Array) -> Array:
    """Random flip, brightness and crop of ONE HWC image, from three split keys.

    ``flip_key, brightness_key, crop_key = split(key, 3)``: a horizontal flip with probability
    1/2; brightness times ``U(0.8, 1.2)``; a ``224 x 224`` crop at offsets drawn in ``[0, 8)``
    per axis (``lax.dynamic_slice``, so the crop is traceable); then clip to ``[0, 1]``.

    Pitfall avoided: one key for the whole batch (or a flip of the batched image, as dm-pix
    makes it) gives every image the same flip and crop; :func:`augment_batch` splits one key per
    image, and a Python ``if`` on the flip draw would fail under ``jit`` (``jnp.where`` does not).

    Args:
      key: one key.
      image: float ``(H, W, 3)`` with ``H, W >= 224`` (232 x 232 lets every offset act; with a
        smaller image ``dynamic_slice`` clamps large offsets).

    Returns:
      float ``(224, 224, 3)`` in ``[0, 1]``.

    Raises:
      TypeError: ``key`` is not a single JAX key (``jax.random.key`` or ``PRNGKey`` data).
      ValueError: ``key`` is an array of keys, not one.
        Also an ``image`` that is not float HWC with H, W >= 224 and 3 channels.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from keyfan.recipes import augment_image
      >>> augment_image(jax.random.PRNGKey(0), jnp.full((232, 232, 3), 0.5)).shape
      (224, 224, 3)
    """
    return _augment(_check_single_key("key", key), _check_image("image", image, batched=False))


def augment_batch(key: Array, images: Array) -> Array:
    """:func:`augment_image` over a batch with ``split(key, B)``: each image gets its own flip,
    brightness and crop.

    Args:
      key: one key, split into one key per image.
      images: float ``(B, H, W, 3)`` with ``H, W >= 224``.

    Returns:
      float ``(B, 224, 224, 3)`` in ``[0, 1]``; image ``i`` equals
        ``augment_image(split(key, B)[i], images[i])``.

    Raises:
      TypeError: ``key`` is not a single JAX key (``jax.random.key`` or ``PRNGKey`` data).
      ValueError: ``key`` is an array of keys, not one.
        Also ``images`` that are not a float batch of HWC images with H, W >= 224.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from keyfan.recipes import augment_batch
      >>> augment_batch(jax.random.PRNGKey(0), jnp.full((4, 232, 232, 3), 0.5)).shape
      (4, 224, 224, 3)
    """
    key = _check_single_key("key", key)
    images = _check_image("images", images, batched=True)
    keys = jax.random.split(key, images.shape[0])
    return jax.vmap(_augment)(keys, images)


# -- 7. Monte Carlo samples -------------------------------------------------------------------

def sample_and_transform(key: Array) -> Array:
    """One Monte Carlo sample: ``x = normal(key, (3,))``, returns ``sin(x) + x**2`` (float32 (3,)).

    Pitfall avoided: ``normal(key, (1000, 3))`` is ONE draw of a big array, not 1000 per-key
    samples; :func:`sample_many` splits 1000 keys, so sample ``i`` can be recomputed from its key.

    Args:
      key: one key.

    Returns:
      float32 ``(3,)``.

    Raises:
      TypeError: ``key`` is not a single JAX key (``jax.random.key`` or ``PRNGKey`` data).
      ValueError: ``key`` is an array of keys, not one.

    Examples:
      >>> import jax
      >>> from keyfan.recipes import sample_and_transform
      >>> sample_and_transform(jax.random.PRNGKey(0)).shape
      (3,)
    """
    x = jax.random.normal(key, (3,))
    return jnp.sin(x) + x**2


def sample_many(key: Array, num_samples: ArrayLike = 1000) -> Array:
    """``num_samples`` independent samples of :func:`sample_and_transform` via split + vmap.

    Args:
      key: one key, split into one key per sample.
      num_samples: how many samples.

    Returns:
      float32 ``(num_samples, 3)``; sample ``i`` equals
        ``sample_and_transform(split(key, num_samples)[i])``.

    Raises:
      TypeError: ``key`` is not a single JAX key (``jax.random.key`` or ``PRNGKey`` data).
      ValueError: ``key`` is an array of keys, not one.
        Also a negative or non-integral size.

    Examples:
      >>> import jax
      >>> from keyfan.recipes import sample_many
      >>> sample_many(jax.random.PRNGKey(0)).shape
      (1000, 3)
    """
    key = _check_single_key("key", key)
    num_samples = as_size("num_samples", num_samples)
    return jax.vmap(sample_and_transform)(jax.random.split(key, num_samples))


# -- 8. Nested batches: the seed's flat key grid ----------------------------------------------

def key_grid(key: Array, n_chains: ArrayLike, batch: ArrayLike) -> Array:
    """The flat grid of keys ``split(key, n_chains * batch).reshape(n_chains, batch)``.

    Keys are of the same kind as ``key``: a raw key gives ``uint32[n_chains, batch, 2]``, a typed
    key a key array of shape ``(n_chains, batch)``. This is the seed's recipe; note that changing
    ``batch`` moves every key after the first row, which is why :func:`keyfan.fan_out` splits
    hierarchically instead.

    Args:
      key: one key.
      n_chains: the outer size.
      batch: the inner size.

    Returns:
      Keys of shape ``(n_chains, batch)`` (raw: ``uint32[n_chains, batch, 2]``).

    Raises:
      TypeError: ``key`` is not a single JAX key (``jax.random.key`` or ``PRNGKey`` data).
      ValueError: ``key`` is an array of keys, not one.
        Also a negative or non-integral size.

    Examples:
      >>> import jax
      >>> from keyfan.recipes import key_grid
      >>> key_grid(jax.random.PRNGKey(0), 4, 8).shape
      (4, 8, 2)
    """
    key = _check_single_key("key", key)
    n_chains = as_size("n_chains", n_chains)
    batch = as_size("batch", batch)
    keys = jax.random.split(key, n_chains * batch)
    return keys.reshape((n_chains, batch, *keys.shape[1:]))


def nested_normal(key: Array, n_chains: ArrayLike, batch: ArrayLike, n: ArrayLike) -> Array:
    """``normal(k, (n,))`` for every key of :func:`key_grid`, consumed by two nested ``vmap`` s.

    Args:
      key: one key.
      n_chains: the outer size.
      batch: the inner size.
      n: the length of each draw.

    Returns:
      float32 ``(n_chains, batch, n)``; entry ``[c, b]`` is ``normal(key_grid(key, n_chains,
        batch)[c, b], (n,))``.

    Raises:
      TypeError: ``key`` is not a single JAX key (``jax.random.key`` or ``PRNGKey`` data).
      ValueError: ``key`` is an array of keys, not one.
        Also a negative or non-integral size.

    Examples:
      >>> import jax
      >>> from keyfan.recipes import nested_normal
      >>> nested_normal(jax.random.PRNGKey(0), 4, 8, 3).shape
      (4, 8, 3)
    """
    n = as_size("n", n)
    grid = key_grid(key, n_chains, batch)
    return jax.vmap(jax.vmap(lambda k: jax.random.normal(k, (n,))))(grid)
