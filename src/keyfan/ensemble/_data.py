"""Built-in toy datasets, generated on the spot from a key (no downloads), bit for bit reproducible.

* ``"moons"``: two interleaving half circles with Gaussian noise, labels 0/1 (classification).
* ``"regression"``: a noisy 1-D curve with heteroscedastic noise and a gap without data around
  0, so an ensemble's spread visibly grows where it has seen nothing (regression).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from keyfan._checks import as_float, as_int
from keyfan._keyarg import check_key
from keyfan.keys import named

__all__ = ["DATASETS", "Dataset", "make_dataset", "make_moons", "make_regression", "regression_curve"]

DATASETS = ("moons", "regression")
REGRESSION_RANGE = (-4.0, 4.0)
REGRESSION_GAP = 1.0
"""Training inputs avoid ``(-REGRESSION_GAP, REGRESSION_GAP)``."""


class Dataset(NamedTuple):
    """A toy dataset: inputs ``x`` ``(N, d)`` float32, targets ``y`` (int32 ``(N,)`` labels for
    classification, float32 ``(N,)`` for regression), stable example ``ids`` ``(N,)`` int32."""

    x: jax.Array
    y: jax.Array
    ids: jax.Array
    task: str


def make_moons(key: Any, n: Any, *, noise: Any = 0.2) -> Dataset:
    """Two moons: ``n`` points alternating between the classes (any prefix is balanced).

    Class 0 lies on ``(cos t, sin t)``, class 1 on ``(1 - cos t, 0.5 - sin t)``, ``t ~ U(0, pi)``,
    plus ``N(0, noise**2)`` per coordinate. Returns a ``"classification"`` :class:`Dataset`.
    """
    key = check_key("key", key).value
    n = as_int("n", n, lo=1)
    noise = as_float("noise", noise, lo=0.0)
    t = jax.random.uniform(named(key, "angle"), (n,), maxval=math.pi)
    labels = jnp.arange(n, dtype=jnp.int32) % 2
    outer = jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1)
    inner = jnp.stack([1.0 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=1)
    x = jnp.where(labels[:, None] == 0, outer, inner)
    x = x + noise * jax.random.normal(named(key, "noise"), (n, 2))
    return Dataset(x.astype(jnp.float32), labels, jnp.arange(n, dtype=jnp.int32), "classification")


def regression_curve(x: jax.Array) -> jax.Array:
    """The noise-free regression target ``sin(1.5 x) + 0.2 x``."""
    return jnp.sin(1.5 * x) + 0.2 * x


def make_regression(key: Any, n: Any) -> Dataset:
    """Noisy 1-D regression: ``x`` uniform on ``[-4, -1] U [1, 4]``, ``y = sin(1.5 x) + 0.2 x + e``
    with ``e ~ N(0, (0.05 + 0.05 |x|)**2)``. Returns a ``"regression"`` :class:`Dataset`
    (``x`` ``(n, 1)``, ``y`` ``(n,)``)."""
    key = check_key("key", key).value
    n = as_int("n", n, lo=1)
    lo, hi = REGRESSION_GAP, REGRESSION_RANGE[1]
    magnitude = jax.random.uniform(named(key, "magnitude"), (n,), minval=lo, maxval=hi)
    sign = jnp.where(jnp.arange(n) % 2 == 0, -1.0, 1.0)
    x = sign * magnitude
    noise = (0.05 + 0.05 * jnp.abs(x)) * jax.random.normal(named(key, "noise"), (n,))
    y = regression_curve(x) + noise
    return Dataset(x[:, None].astype(jnp.float32), y.astype(jnp.float32), jnp.arange(n, dtype=jnp.int32),
                   "regression")


def make_dataset(name: str, key: Any, *, n_train: Any, n_test: Any) -> tuple[Dataset, Dataset]:
    """``(train, test)`` of a built-in dataset, drawn with ``kf.named(key, "train" / "test")``."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(map(repr, DATASETS))}, got {name!r}.")
    make = make_moons if name == "moons" else make_regression
    key = check_key("key", key).value
    return make(named(key, "train"), n_train), make(named(key, "test"), n_test)
