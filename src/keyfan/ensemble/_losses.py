"""Per-example losses for ensemble training: ``loss(output, target) -> scalar`` for ONE example.

The trainer applies the model one example at a time (so each example gets its own dropout key)
and maps the loss over the batch, so a loss sees one example's output and target.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from keyfan.ensemble._predict import gaussian_variance
from keyfan.ensemble._tasks import Task

__all__ = ["LOSSES", "LOSS_TASKS", "cross_entropy", "gaussian_nll", "get_loss", "mse"]

Loss = Callable[[jax.Array, jax.Array], jax.Array]


def cross_entropy(logits: jax.Array, label: jax.Array) -> jax.Array:
    """Softmax cross-entropy of one example's logits against its integer label.

    Args:
      logits: float ``(C,)``.
      label: int ``()`` in ``[0, C)``.

    Returns:
      float ``()``: ``-log softmax(logits)[label]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan.ensemble import cross_entropy
      >>> round(float(cross_entropy(jnp.zeros(4), jnp.int32(2))), 4)  # log 4
      1.3863
    """
    return optax.softmax_cross_entropy_with_integer_labels(logits, label)


def mse(prediction: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared error over one example's elements.

    Args:
      prediction: float array of any shape.
      target: float array broadcastable against ``prediction``.

    Returns:
      float ``()``: ``mean((prediction - target) ** 2)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan.ensemble import mse
      >>> float(mse(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0])))
      5.0
    """
    return jnp.mean(jnp.square(prediction - target))


def gaussian_nll(output: jax.Array, target: jax.Array) -> jax.Array:
    """Gaussian negative log-likelihood of one example's mean-variance output.

    Args:
      output: float ``(..., 2)``: the mean, and a raw scale turned into the variance by
        :func:`~keyfan.ensemble.gaussian_variance`.
      target: float ``(...)`` or ``(..., 1)``.

    Returns:
      float ``()``: the NLL summed over the example's elements.

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan.ensemble import gaussian_nll
      >>> float(gaussian_nll(jnp.array([0.0, 10.0]), jnp.array(0.0))) < float(
      ...     gaussian_nll(jnp.array([0.0, 10.0]), jnp.array(3.0)))
      True
    """
    mean, var = output[..., 0], gaussian_variance(output[..., 1])
    target = jnp.reshape(target, mean.shape)
    return jnp.sum(0.5 * (jnp.log(var) + jnp.square(target - mean) / var + math.log(2 * math.pi)))


LOSSES: dict[str, Loss] = {"cross_entropy": cross_entropy, "mse": mse, "gaussian_nll": gaussian_nll}
LOSS_TASKS: dict[str, Task] = {"cross_entropy": "classification", "mse": "regression", "gaussian_nll": "gaussian"}
"""What a named loss says the members output: the ``task`` a trainer records on the ensemble."""


def get_loss(loss: Any) -> Loss:
    """A loss by name (``"cross_entropy"``, ``"mse"``, ``"gaussian_nll"``) or a callable as is."""
    if callable(loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]
    raise ValueError(f"loss must be one of {', '.join(map(repr, LOSSES))} or a callable "
                     f"loss(output, target) -> scalar for one example; got {loss!r}.")
