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

from keyfan.ensemble._arrays import array_arg, describe
from keyfan.ensemble._predict import gaussian_variance
from keyfan.ensemble._tasks import Task

__all__ = ["LOSSES", "LOSS_TASKS", "cross_entropy", "gaussian_nll", "get_loss", "mse"]

Loss = Callable[[jax.Array, jax.Array], jax.Array]


def cross_entropy(logits: jax.Array, label: jax.Array) -> jax.Array:
    """Softmax cross-entropy of one example's logits against its integer label.

    Guarantee: equal to ``-jax.nn.log_softmax(logits)[label]`` (optax's stable form); the result
    has ``logits``' float dtype (bfloat16 in, bfloat16 out). The trainer maps it over the batch,
    so it sees one example; given ``(B, C)`` logits and ``(B,)`` labels it returns ``(B,)``.

    Args:
      logits: float ``(C,)``: one example's unnormalised class scores (``(..., C)`` for a batch).
      label: integer ``()`` in ``[0, C)``: that example's class (``logits.shape[:-1]`` for a
        batch; a Python int is accepted).

    Returns:
      A float ``()`` array, ``-log softmax(logits)[label]``, in ``logits``' dtype.

    Raises:
      TypeError: ``logits`` is not a floating-point array, ``label`` is not of an integer dtype
        (a float, bool or one-hot label), or an argument is a Python list. The label's range is
        not checked here (it may be traced); the trainer checks concrete labels.
      ValueError: ``logits`` is a scalar or has no classes, or ``label``'s shape is not
        ``logits.shape[:-1]``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from keyfan.ensemble import cross_entropy
      >>> round(float(cross_entropy(jnp.zeros(4), jnp.int32(2))), 4)  # log 4
      1.3863
      >>> logits = jnp.array([2.0, -1.0, 0.5])
      >>> loss = cross_entropy(logits, jnp.int32(0))
      >>> loss.shape, loss.dtype
      ((), dtype('float32'))
      >>> bool(jnp.allclose(loss, -jax.nn.log_softmax(logits)[0]))
      True
    """
    logits = array_arg("logits", logits, kind="float", what="float class scores (C,)", min_ndim=1)
    label = array_arg("label", label, kind="int", what="an integer class label ()")
    if logits.shape[-1] == 0:
        raise ValueError(f"logits must have at least one class on its last axis, got {describe(logits)}.")
    if label.shape != logits.shape[:-1]:
        raise ValueError(f"label must have the shape of logits without its class axis, {tuple(logits.shape[:-1])}, "
                         f"got {describe(label)} (logits has shape {tuple(logits.shape)}).")
    return optax.softmax_cross_entropy_with_integer_labels(logits, label)


def mse(prediction: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared error over one example's elements.

    Guarantee: exactly ``jnp.mean((prediction - target) ** 2)``, a scalar whatever the shapes;
    float inputs keep their dtype (bfloat16 in, bfloat16 out), integer inputs give float32.

    Args:
      prediction: float (or integer) array of any shape: one example's output.
      target: float (or integer) array that broadcasts to ``prediction``'s shape (the same
        shape, or fewer or unit axes: ``()`` against ``(1,)`` is fine, ``(3,)`` against ``(3, 1)``
        is not, since it would broadcast to ``(3, 3)``).

    Returns:
      A float ``()`` array, ``mean((prediction - target) ** 2)`` over every element.

    Raises:
      TypeError: an argument is a Python list, not an array, or not numeric (bool, complex or
        key dtype).
      ValueError: ``target`` does not broadcast to ``prediction``'s shape (a broadcast that
        grows the result, such as ``(B, 1)`` against ``(B,)``, would average the wrong pairs).

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan.ensemble import mse
      >>> float(mse(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0])))
      5.0
      >>> loss = mse(jnp.ones((2, 3)), jnp.zeros(3))   # target broadcast over the first axis
      >>> loss.shape, loss.dtype, float(loss)
      ((), dtype('float32'), 1.0)
    """
    prediction = array_arg("prediction", prediction, kind="real", what="a numeric array (one example's output)")
    target = array_arg("target", target, kind="real", what="a numeric array shaped like prediction")
    if not _broadcasts_to(target.shape, prediction.shape):
        raise ValueError(f"target must broadcast to prediction's shape {tuple(prediction.shape)}, got "
                         f"{describe(target)}; reshape it to {tuple(prediction.shape)}.")
    return jnp.mean(jnp.square(prediction - target))


def _broadcasts_to(shape: tuple[int, ...], to: tuple[int, ...]) -> bool:
    try:
        return tuple(jnp.broadcast_shapes(shape, to)) == tuple(to)
    except ValueError:
        return False


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def gaussian_nll(output: jax.Array, target: jax.Array) -> jax.Array:
    """Gaussian negative log-likelihood of one example's mean-variance output.

    Guarantee: with ``mu = output[..., 0]`` and ``var = gaussian_variance(output[..., 1])``
    (always ``> 0``), the result is ``sum(0.5 * (log var + (target - mu) ** 2 / var + log 2 pi))``
    over the example's elements: a scalar in ``output``'s float dtype, minimised at
    ``mu = target``. The same variance map is used by :func:`summarize` and the metrics.

    Args:
      output: float ``(..., 2)``: the mean, and a raw scale turned into the variance by
        :func:`~keyfan.ensemble.gaussian_variance`.
      target: float (or integer) with the mean's shape ``output.shape[:-1]``, up to axes of size
        1 (``(..., 1)`` or ``()`` for one value): reshaped to the mean's shape.

    Returns:
      A float ``()`` array: the NLL in nats, summed over the example's elements.

    Raises:
      TypeError: ``output`` is not a floating-point array, ``target`` is not numeric, or an
        argument is a Python list.
      ValueError: ``output``'s last axis is not 2 (mean, raw scale), or ``target``'s shape is
        not the mean's shape up to axes of size 1 (a reshape would pair the wrong values).

    Examples:
      >>> import math, jax.numpy as jnp
      >>> from keyfan.ensemble import gaussian_nll, gaussian_variance
      >>> float(gaussian_nll(jnp.array([0.0, 10.0]), jnp.array(0.0))) < float(
      ...     gaussian_nll(jnp.array([0.0, 10.0]), jnp.array(3.0)))
      True
      >>> out = jnp.array([[1.0, 0.0], [2.0, 0.0]])   # two elements, mean 1 and 2, raw scale 0
      >>> loss = gaussian_nll(out, jnp.array([[1.0], [2.0]]))
      >>> loss.shape, loss.dtype
      ((), dtype('float32'))
      >>> var = float(gaussian_variance(jnp.float32(0.0)))   # softplus(0) + 1e-6
      >>> bool(abs(float(loss) - 2 * 0.5 * (math.log(var) + math.log(2 * math.pi))) < 1e-5)
      True
    """
    output = array_arg("output", output, kind="float", what="float mean-variance pairs (..., 2)", min_ndim=1)
    target = array_arg("target", target, kind="real", what="a numeric array with the mean's shape")
    if output.shape[-1] != 2:
        raise ValueError(f"output must be mean-variance pairs (..., 2) (mean, raw scale), got {describe(output)}; "
                         f"a last axis of {output.shape[-1]} is not a pair.")
    if _squeezed(target.shape) != _squeezed(output.shape[:-1]):
        raise ValueError(f"target must have the mean's shape {tuple(output.shape[:-1])} (output.shape[:-1], axes of "
                         f"size 1 aside), got {describe(target)}.")
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
    error = ValueError if isinstance(loss, str) else TypeError  # an unknown name, or neither a name nor a callable
    raise error(f"loss must be one of {', '.join(map(repr, LOSSES))} or a callable "
                f"loss(output, target) -> scalar for one example; got {type(loss).__name__} {loss!r:.60}.")
