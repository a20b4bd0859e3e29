"""Predictive summaries of an ensemble: the mixture of its members' predictions.

Three tasks, chosen by what the members output:

* ``"classification"``: logits ``(K, B, C)``. The predictive distribution is the mean of the
  members' softmax probabilities; its entropy is the total uncertainty, and the mutual
  information (entropy of the mean minus the mean of the members' entropies) the part due to
  disagreement between members (epistemic).
* ``"regression"``: point predictions ``(K, B, ...)``. Mean and (population) variance over
  members.
* ``"gaussian"``: mean-variance members, ``(K, B, ..., 2)`` with ``[..., 0]`` the mean and
  ``[..., 1]`` a raw scale mapped to a variance by :func:`gaussian_variance` (the
  ``"gaussian_nll"`` loss uses the same map). The mixture's mean and variance (mean of the
  members' variances plus the variance of their means), as in Lakshminarayanan et al. (2017).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.typing import ArrayLike

from keyfan.ensemble._arrays import array_arg, describe
from keyfan.ensemble._inputs import check_batch
from keyfan.ensemble._shard import (
    DATA_AXIS,
    _check_mesh,
    assemble,
    check_layout,
    device_blocks,
    fixed_sum,
    shard_batch,
    shard_members,
)
from keyfan.ensemble._tasks import TASKS, check_task
from keyfan.typing import PyTree

if TYPE_CHECKING:
    from keyfan.ensemble._ensemble import Ensemble  # at run time, imported in predict (it imports this module)

__all__ = ["ClassificationPrediction", "RegressionPrediction", "TASKS", "gaussian_variance", "predict",
           "summarize"]

MIN_VARIANCE = 1e-6


class RegressionPrediction(NamedTuple):
    """Predictive mean and variance, each of shape ``(B, ...)``.

    What :func:`summarize` and :func:`~keyfan.ensemble.predict` return for ``task="regression"``
    and ``task="gaussian"``: a ``NamedTuple`` (a pytree, so it passes through ``jit``), both
    fields of the members' output shape without the member axis (and, for ``"gaussian"``,
    without the last ``(mean, raw scale)`` axis), in the outputs' float dtype (float32 for
    integer outputs). ``variance`` is ``>= 0`` (``> 0`` for ``"gaussian"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan.ensemble import RegressionPrediction, summarize
      >>> pred = summarize(jnp.array([[1.0, 2.0], [3.0, 6.0]]), task="regression")   # K=2, B=2
      >>> isinstance(pred, RegressionPrediction), pred.mean.tolist(), pred.variance.tolist()
      (True, [2.0, 4.0], [1.0, 4.0])
      >>> mean, variance = pred   # unpacks like a tuple
      >>> mean.shape, variance.dtype
      ((2,), dtype('float32'))
    """

    mean: jax.Array
    """The members' mean prediction."""
    variance: jax.Array
    """The members' spread (regression), or the mixture's total variance (``task="gaussian"``)."""


class ClassificationPrediction(NamedTuple):
    """Mean probabilities ``(B, C)``; predictive entropy and mutual information ``(B,)`` in nats.

    What :func:`summarize` and :func:`~keyfan.ensemble.predict` return for
    ``task="classification"``: a ``NamedTuple`` (a pytree, so it passes through ``jit``) in the
    logits' float dtype (float32 for integer logits). ``probs`` rows sum to 1;
    ``0 <= mutual_information <= entropy <= log C`` (clamped at 0 against rounding).

    Examples:
      >>> import math, jax.numpy as jnp
      >>> from keyfan.ensemble import ClassificationPrediction, summarize
      >>> logits = jnp.zeros((3, 5, 4))   # K=3 members agree (uniform) on B=5 examples, C=4
      >>> pred = summarize(logits, task="classification")
      >>> isinstance(pred, ClassificationPrediction), pred.probs.shape, pred.entropy.shape
      (True, (5, 4), (5,))
      >>> bool(jnp.allclose(pred.entropy, math.log(4))), pred.mutual_information.tolist()
      (True, [0.0, 0.0, 0.0, 0.0, 0.0])
    """

    probs: jax.Array
    """The members' mean class probabilities ``(B, C)``."""
    entropy: jax.Array
    """Entropy of ``probs`` ``(B,)``: total predictive uncertainty."""
    mutual_information: jax.Array
    """Entropy of the mean minus the mean of the members' entropies ``(B,)``: their disagreement."""


def gaussian_variance(raw: jax.Array) -> jax.Array:
    """A member's variance from its raw output: ``softplus(raw) + 1e-6`` (positive, smooth).

    Guarantee: elementwise, of ``raw``'s shape and float dtype (float32 for integer input),
    every entry ``> 0`` even for very negative ``raw`` (the ``1e-6`` floor); the one map shared
    by the ``"gaussian_nll"`` loss, :func:`summarize` and the metrics.

    Args:
      raw: float array of any shape.

    Returns:
      A float array of ``raw``'s shape, every entry ``> 0``.

    Raises:
      TypeError: ``raw`` is a Python list, not an array or number, or not numeric (bool, complex
        or key dtype).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from keyfan.ensemble import gaussian_variance
      >>> bool((gaussian_variance(jnp.array([-50.0, 0.0, 5.0])) > 0).all())
      True
      >>> raw = jnp.zeros((2, 3), jnp.bfloat16)
      >>> var = gaussian_variance(raw)
      >>> var.shape, var.dtype, bool((var == jax.nn.softplus(raw) + 1e-6).all())
      ((2, 3), dtype(bfloat16), True)
    """
    raw = array_arg("raw", raw, kind="real", what="a float array of raw scales")
    return jax.nn.softplus(raw) + MIN_VARIANCE


def _entropy(probs: jax.Array) -> jax.Array:
    terms = jnp.where(probs > 0, probs * jnp.log(jnp.where(probs > 0, probs, 1.0)), 0.0)
    return -fixed_sum(terms, axis=-1)


def _mean(a: jax.Array) -> jax.Array:
    """The mean over members, in a layout-independent order (see ``_shard.fixed_sum``)."""
    return fixed_sum(a, axis=0) / a.shape[0]


def resolve_task(ensemble: Any, task: Any) -> str:
    """The task to summarise ``ensemble``'s outputs as: ``task`` if given (it must agree with the
    task the ensemble records, if any), else the recorded task, else ``"regression"``."""
    recorded = ensemble.task
    if task is None:
        return recorded or "regression"
    check_task(task)
    if recorded is not None and task != recorded:
        raise ValueError(
            f"task={task!r} differs from this ensemble's task {recorded!r} (recorded from its training "
            f"loss or given at init); leave task= out to summarise it as {recorded!r}, or take the raw "
            f"member outputs with ens.apply(x) and summarize(outputs, task=...) from keyfan.ensemble."
        )
    return task


def _softmax(logits: jax.Array) -> jax.Array:
    e = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
    return e / fixed_sum(e, axis=-1)[..., None]


def summarize(outputs: ArrayLike, *, task: str) -> RegressionPrediction | ClassificationPrediction:
    """The predictive summary of members' outputs ``(K, B, ...)`` (see the module docstring).

    Guarantee: the member axis (axis 0) is reduced and every other axis kept (``"gaussian"``
    also drops the last ``(mean, raw scale)`` axis); the means over members are summed in a
    fixed, layout-independent order, so the result does not depend on how the outputs were
    sharded; results are in the outputs' float dtype (float32 for integer outputs).

    Args:
      outputs: float array with the member axis first, ``(K, B, ...)``; a NumPy array or nested
        list is converted with ``jnp.asarray``.
      task: ``"regression"``, ``"gaussian"`` or ``"classification"``.

    Returns:
      A :class:`RegressionPrediction` (``"regression"``, ``"gaussian"``) or a
        :class:`ClassificationPrediction` (``"classification"``).

    Raises:
      ValueError: ``task`` is not one of the three; ``outputs`` has fewer than 2 axes (3 for
        ``"classification"``, ``(K, B, C)``, and ``"gaussian"``, ``(K, B, ..., 2)``) or no
        member (``K = 0``); or, for ``"gaussian"``, its last axis is not 2.
      TypeError: ``outputs`` is not numeric (bool, complex, key or string dtype).

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan.ensemble import summarize
      >>> logits = jnp.array([[[4.0, 0.0]], [[0.0, 4.0]]])   # 2 members disagree on 1 example
      >>> pred = summarize(logits, task="classification")
      >>> pred.probs.tolist(), round(float(pred.mutual_information[0]), 3)
      ([[0.5, 0.5]], 0.603)
      >>> out = jnp.array([[[1.0, 0.0], [2.0, 0.0]], [[3.0, 0.0], [4.0, 0.0]]])   # (K=2, B=2, 2)
      >>> g = summarize(out, task="gaussian")   # variance: softplus(0) + 1e-6 + spread 1.0
      >>> g.mean.tolist(), g.variance.shape, round(float(g.variance[0]), 5)
      ([2.0, 3.0], (2,), 1.69315)
    """
    task = check_task(task)
    outputs = _check_outputs(outputs, task)
    if task == "classification":
        probs = _softmax(outputs)
        mean = _mean(probs)
        entropy = _entropy(mean)
        expected = _mean(_entropy(probs))
        return ClassificationPrediction(mean, entropy, jnp.maximum(entropy - expected, 0.0))
    if task == "gaussian":
        if outputs.shape[-1] != 2:
            raise ValueError(f"task='gaussian' needs member outputs (..., 2) = (mean, raw scale), got {outputs.shape}.")
        mu, var = outputs[..., 0], gaussian_variance(outputs[..., 1])
        mean = _mean(mu)
        return RegressionPrediction(mean, _mean(var) + _mean(jnp.square(mu - mean)))
    mean = _mean(outputs)
    return RegressionPrediction(mean, _mean(jnp.square(outputs - mean)))


def _check_outputs(outputs: Any, task: str) -> jax.Array:
    if isinstance(outputs, (list, tuple)):
        outputs = jnp.asarray(outputs)  # documented: a nested list is converted
    layout = {"classification": "(K, B, C)", "gaussian": "(K, B, ..., 2)"}.get(task, "(K, B, ...)")
    outputs = array_arg("outputs", outputs, kind="real", what=f"member outputs {layout}",
                        min_ndim=2 if task == "regression" else 3)
    if outputs.shape[0] == 0:
        raise ValueError(f"outputs must have at least one member (K >= 1) on axis 0, got {describe(outputs)}.")
    return jnp.asarray(outputs)


def predict(ensemble: Ensemble, x: PyTree, *, task: str | None = None, mesh: Mesh | None = None,
            **kwargs: object) -> RegressionPrediction | ClassificationPrediction:
    """Runs every member (deterministically) on ``x`` and summarises their predictions.

    Args:
      ensemble: a :class:`~keyfan.Ensemble`.
      x: a batch ``(B, ...)`` matching the ensemble's ``sample_input``.
      task: ``"regression"``, ``"gaussian"`` or ``"classification"``. None (the default) takes
        the task the ensemble records (a :class:`~keyfan.ensemble.Trainer` records it from its
        loss: ``"cross_entropy"`` -> classification, ``"mse"`` -> regression,
        ``"gaussian_nll"`` -> gaussian), and ``"regression"`` for an ensemble that records none.
        A ``task`` that differs from the recorded one is refused: summarising a classifier's
        logits as a regression (their mean and spread) is never a prediction.
      mesh: the ``(member, data)`` mesh to run on, if any: each device runs its members on its
        examples, and member outputs are copied together before the mean, so the bits equal one
        device's (see ``_shard.py``). The result is split over ``"data"``.
      **kwargs: passed to the model.

    Returns:
      ``RegressionPrediction(mean, variance)``, each ``(B, ...)``, or
        ``ClassificationPrediction(probs (B, C), entropy (B,), mutual_information (B,))``.

    Raises:
      TypeError: ``ensemble`` is not a :class:`~keyfan.Ensemble`, or ``x`` is a Python list
        (of one input's arrays).
      ValueError: ``task`` is not one of the three, or differs from the task the ensemble
        records; ``x`` has no batch axis, or does not match the ensemble's ``sample_input``.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, keyfan as kf
      >>> x = jnp.ones((5, 3))
      >>> ens = kf.Ensemble.init(nn.Dense(1), kf.key(0), members=4, sample_input=x)
      >>> mean, var = ens.predict(x)
      >>> mean.shape, var.shape
      ((5, 1), (5, 1))
      >>> clf = kf.Ensemble.init(nn.Dense(3), kf.key(0), members=4, sample_input=x, task="classification")
      >>> clf.predict(x).probs.shape
      (5, 3)
    """
    from keyfan.ensemble._ensemble import Ensemble  # the module imports this one

    if not isinstance(ensemble, Ensemble):
        raise TypeError(f"ensemble must be a kf.Ensemble, got {type(ensemble).__name__}.")
    task = resolve_task(ensemble, task)
    check_batch("x", x, ensemble.spec, members=ensemble.members if kwargs.get("per_member") else None)
    if mesh is None:
        return _summarize_jit(_apply_jit(ensemble, x, _items(kwargs)), task)
    _check_mesh(mesh)
    check_layout(mesh, ensemble.members)
    ens_blocks = device_blocks(shard_members(ensemble, mesh), mesh)
    x_blocks = device_blocks(shard_batch(x, mesh), mesh)
    outputs = {pos: _apply_jit(ens_blocks[pos], x_blocks[pos], _items(kwargs)) for pos in ens_blocks}
    devices = mesh.devices
    results = {}
    for (i, j), device in np.ndenumerate(devices):
        column = [jax.device_put(outputs[(ii, j)], device) for ii in range(devices.shape[0])]
        results[(i, j)] = _summarize_jit(jnp.concatenate(column), task)
    return assemble(results, mesh, DATA_AXIS)


def _items(kwargs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    try:
        items = tuple(sorted(kwargs.items()))
        hash(items)
    except TypeError as err:
        raise TypeError(f"predict's model keyword arguments must be hashable (e.g. train=False), got {kwargs!r}.") \
            from err
    return items


PREDICT_BLOCK = 16
"""Examples per forward pass of a prediction: every device runs its examples in blocks of this
many (the last one padded), so an example's outputs come from a program of the same shapes on
every mesh (a matmul's kernel, hence its rounding, depends on its row count)."""


@functools.partial(jax.jit, static_argnames=("kwargs",))
def _apply_jit(ensemble: Any, x: Any, kwargs: tuple[tuple[str, Any], ...]) -> Any:
    """``ensemble.apply(x, **kwargs)`` ``(K, B, ...)``, computed one member at a time
    (``lax.map`` over one-member ensembles) on blocks of :data:`PREDICT_BLOCK` examples: each
    output comes from the same single-member, one-block program whatever the members and
    examples a device holds, so predictions agree bitwise on every mesh. (Vmapped over members,
    or over a device's whole batch, XLA would pick kernels by the size of the block.) With
    ``ids=`` or ``per_member=True``, the members are vmapped as in ``apply``."""
    options = dict(kwargs)
    if options.get("ids") is not None or options.get("per_member"):
        return ensemble.apply(x, **options)
    n = jax.tree.leaves(x)[0].shape[0]
    blocks = -(-n // PREDICT_BLOCK)

    def cut(a: jax.Array) -> jax.Array:
        a = jnp.concatenate([a, jnp.zeros((blocks * PREDICT_BLOCK - n, *a.shape[1:]), a.dtype)])
        return a.reshape(blocks, PREDICT_BLOCK, *a.shape[1:])

    xb = jax.tree.map(cut, x)

    def one(single: Any) -> Any:
        out = jax.lax.map(lambda block: single.apply(block, **options)[0], xb)
        return jax.tree.map(lambda a: a.reshape(blocks * PREDICT_BLOCK, *a.shape[2:])[:n], out)

    return jax.lax.map(one, jax.tree.map(lambda a: a[:, None], ensemble))


@functools.partial(jax.jit, static_argnames=("task",))
def _summarize_jit(outputs: jax.Array, task: str) -> Any:
    return summarize(outputs, task=task)
