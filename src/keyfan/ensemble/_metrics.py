"""Evaluation metrics for members and ensembles (float32, deterministic, on device).

Classification (from probabilities ``(B, C)`` and integer labels ``(B,)``): accuracy, negative
log-likelihood (nats per example), Brier score (sum over classes of the squared error, mean over
examples) and expected calibration error (15 equal-width confidence bins, weighted by count).

Regression with mean-variance members (task ``"gaussian"``): RMSE of the mean, Gaussian NLL
(for the ensemble, of the exact mixture ``mean_k N(y; mu_k, var_k)``), and the coverage of the
``mean +- 2 sigma`` interval (0.954 for a calibrated Gaussian).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import jax
import jax.numpy as jnp
import numpy as np

from keyfan._checks import is_traced
from keyfan.ensemble._arrays import array_arg, check_labels_in_range, describe
from keyfan.ensemble._predict import gaussian_variance
from keyfan.ensemble._tasks import check_task

__all__ = ["CLASSIFICATION_METRICS", "REGRESSION_METRICS", "EnsembleReport", "classification_metrics",
           "ensemble_report", "regression_metrics", "report_table"]

CLASSIFICATION_METRICS = ("accuracy", "nll", "brier", "ece")
REGRESSION_METRICS = ("rmse", "nll", "coverage_2sigma")
ECE_BINS = 15
_EPS = 1e-12


class EnsembleReport(TypedDict):
    """What :func:`ensemble_report` returns: metric name to Python ``float`` for each member, their
    mean and the ensemble.

    The metric names are ``"accuracy"``, ``"nll"``, ``"brier"``, ``"ece"`` (``task="classification"``)
    or ``"rmse"``, ``"nll"``, ``"coverage_2sigma"`` (``task="gaussian"``), in that order in every
    dict; ``members`` has one dict per member, in member order. A plain
    ``dict`` at run time (JSON-serialisable as is), typed so a type checker knows each key.

    Examples:
      >>> import json, jax.numpy as jnp
      >>> from keyfan.ensemble import EnsembleReport, ensemble_report
      >>> report: EnsembleReport = ensemble_report(jnp.zeros((2, 3, 2)), jnp.zeros(3), task="gaussian")
      >>> type(report).__name__, sorted(report), len(report["members"])
      ('dict', ['ensemble', 'member_mean', 'members'], 2)
      >>> list(report["ensemble"]), json.loads(json.dumps(report)) == report
      (['rmse', 'nll', 'coverage_2sigma'], True)
    """

    members: list[dict[str, float]]
    """One ``{metric: value}`` per member, in member order."""
    member_mean: dict[str, float]
    """The members' values averaged, metric by metric."""
    ensemble: dict[str, float]
    """The metrics of the ensemble's predictive mixture."""


def classification_metrics(probs: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """Accuracy, NLL, Brier score and expected calibration error (ECE) of class probabilities.

    Guarantee: four scalars in ``probs``' dtype, computed on device with no data-dependent
    Python branch (so it runs under ``jit`` and ``vmap``, as :func:`ensemble_report` does):
    accuracy of the argmax, mean ``-log p[label]`` (``p`` floored at ``1e-12``), the mean over
    examples of the summed squared error to the one-hot label, and ECE over 15 equal-width
    confidence bins weighted by count.

    Args:
      probs: float ``(B, C)``, rows summing to 1, ``B, C >= 1``.
      labels: int ``(B,)`` in ``[0, C)`` (a JAX or NumPy integer array).

    Returns:
      A dict ``{"accuracy", "nll", "brier", "ece"}`` of float ``()`` arrays in ``probs``' dtype.

    Raises:
      TypeError: an argument is a Python list or not an array, ``probs`` is not floating-point,
        or ``labels`` is not of an integer dtype (float or bool labels, one-hot labels).
      ValueError: ``probs`` is not ``(B, C)`` with ``B, C >= 1``, ``labels`` is not ``(B,)``, or
        a label is outside ``[0, C)`` (checked when ``labels`` is concrete; under ``jit`` it is
        used as given). Rows summing to 1 are not checked.

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan.ensemble import classification_metrics
      >>> m = classification_metrics(jnp.array([[0.9, 0.1], [0.2, 0.8]]), jnp.array([0, 1]))
      >>> float(m["accuracy"])
      1.0
      >>> {name: round(float(value), 6) for name, value in m.items()}   # Brier (0.02 + 0.08) / 2
      {'accuracy': 1.0, 'nll': 0.164252, 'brier': 0.05, 'ece': 0.15}
      >>> m["ece"].shape, m["ece"].dtype
      ((), dtype('float32'))
    """
    probs, labels = _check_classification(probs, labels)
    check_labels_in_range("labels", labels, probs.shape[-1])
    n_classes = probs.shape[-1]
    onehot = jax.nn.one_hot(labels, n_classes, dtype=probs.dtype)
    confidence = jnp.max(probs, axis=-1)
    correct = (jnp.argmax(probs, axis=-1) == labels).astype(probs.dtype)
    picked = jnp.sum(probs * onehot, axis=-1)
    bins = jnp.clip(jnp.floor(confidence * ECE_BINS).astype(jnp.int32), 0, ECE_BINS - 1)
    in_bin = jax.nn.one_hot(bins, ECE_BINS, dtype=probs.dtype)
    gap = jnp.abs(jnp.sum(in_bin * (correct - confidence)[:, None], axis=0))
    ece = jnp.sum(gap) / labels.shape[0]
    return {
        "accuracy": jnp.mean(correct),
        "nll": -jnp.mean(jnp.log(jnp.maximum(picked, _EPS))),
        "brier": jnp.mean(jnp.sum(jnp.square(probs - onehot), axis=-1)),
        "ece": ece,
    }


def _check_classification(probs: Any, labels: Any) -> tuple[Any, Any]:
    probs = array_arg("probs", probs, kind="float", what="float class probabilities (B, C)", ndim=2)
    labels = array_arg("labels", labels, kind="int", what="integer class labels (B,)", ndim=1)
    if probs.shape[0] == 0 or probs.shape[1] == 0:
        raise ValueError(f"probs must be (B, C) with at least one example and one class, got {describe(probs)}.")
    if labels.shape[0] != probs.shape[0]:
        raise ValueError(f"labels must have one label per row of probs, shape ({probs.shape[0]},), got "
                         f"{describe(labels)}.")
    return probs, labels


def _normal_logpdf(y: jax.Array, mean: jax.Array, var: jax.Array) -> jax.Array:
    return -0.5 * (jnp.log(2 * math.pi * var) + jnp.square(y - mean) / var)


def regression_metrics(means: jax.Array, variances: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    """RMSE, mixture NLL and 2-sigma coverage of a mixture of ``M`` Gaussians (``M=1`` for one
    member).

    Guarantee: three scalars, computed on device (``jit``/``vmap`` safe): the RMSE of the
    mixture mean, the mean over examples of ``-log mean_m N(y; mu_m, var_m)`` (the exact
    mixture, by ``logsumexp``), and the fraction of targets within two standard deviations of
    the mixture (variance: mean of the variances plus the variance of the means). Coverage is
    float32; the others follow the inputs' float dtype.

    Args:
      means: float ``(M, B)``, ``M, B >= 1``.
      variances: float ``(M, B)``, positive.
      targets: float (or integer) ``(B,)``.

    Returns:
      A dict ``{"rmse", "nll", "coverage_2sigma"}`` of float ``()`` arrays.

    Raises:
      TypeError: an argument is a Python list or not an array, ``means`` or ``variances`` is not
        floating-point, or ``targets`` is not numeric.
      ValueError: ``means`` is not ``(M, B)`` with ``M, B >= 1``, ``variances`` has another
        shape, ``targets`` is not ``(B,)``, or a variance is not positive (checked when
        ``variances`` is concrete; under ``jit`` it is used as given).

    Examples:
      >>> import math, jax.numpy as jnp
      >>> from keyfan.ensemble import regression_metrics
      >>> m = regression_metrics(jnp.zeros((1, 4)), jnp.ones((1, 4)), jnp.array([0.0, 1.0, -1.0, 3.0]))
      >>> float(m["coverage_2sigma"])
      0.75
      >>> two = regression_metrics(jnp.array([[0.0], [2.0]]), jnp.ones((2, 1)), jnp.array([1.0]))
      >>> float(two["rmse"]), round(float(two["nll"]), 5) == round(0.5 * (math.log(2 * math.pi) + 1), 5)
      (0.0, True)
    """
    means = array_arg("means", means, kind="float", what="float member means (M, B)", ndim=2)
    variances = array_arg("variances", variances, kind="float", what="float member variances (M, B)", ndim=2)
    targets = array_arg("targets", targets, kind="real", what="regression targets (B,)", ndim=1)
    if means.shape[0] == 0 or means.shape[1] == 0:
        raise ValueError(f"means must be (M, B) with at least one member and one example, got {describe(means)}.")
    if variances.shape != means.shape:
        raise ValueError(f"variances must have the shape of means, {tuple(means.shape)}, got {describe(variances)}.")
    if targets.shape[0] != means.shape[1]:
        raise ValueError(f"targets must have one target per column of means, shape ({means.shape[1]},), got "
                         f"{describe(targets)}.")
    if not is_traced(variances) and variances.size and not bool(np.all(np.asarray(variances) > 0)):
        raise ValueError(f"variances must be positive, got a minimum of {np.nanmin(np.asarray(variances))} "
                         f"(NaN: {bool(np.isnan(np.asarray(variances)).any())}); map raw scales with "
                         f"kf.ensemble.gaussian_variance.")
    mean = jnp.mean(means, axis=0)
    var = jnp.mean(variances, axis=0) + jnp.mean(jnp.square(means - mean), axis=0)
    log_mix = jax.scipy.special.logsumexp(_normal_logpdf(targets, means, variances), axis=0) - math.log(means.shape[0])
    return {
        "rmse": jnp.sqrt(jnp.mean(jnp.square(mean - targets))),
        "nll": -jnp.mean(log_mix),
        "coverage_2sigma": jnp.mean((jnp.abs(targets - mean) <= 2.0 * jnp.sqrt(var)).astype(jnp.float32)),
    }


@jax.jit
def _classification_report(logits: jax.Array, labels: jax.Array) -> dict[str, Any]:
    probs = jax.nn.softmax(logits, axis=-1)
    members = jax.vmap(classification_metrics, in_axes=(0, None))(probs, labels)
    return {"members": members, "ensemble": classification_metrics(jnp.mean(probs, axis=0), labels)}


@jax.jit
def _regression_report(outputs: jax.Array, targets: jax.Array) -> dict[str, Any]:
    means, variances = outputs[..., 0], gaussian_variance(outputs[..., 1])
    members = jax.vmap(lambda m, v: regression_metrics(m[None], v[None], targets))(means, variances)
    return {"members": members, "ensemble": regression_metrics(means, variances, targets)}


def ensemble_report(outputs: jax.Array, targets: jax.Array, *, task: str) -> EnsembleReport:
    """Per-member, member-mean and ensemble metrics from member outputs ``(K, B, ...)``.

    Guarantee: member ``k``'s entry is :func:`classification_metrics` of ``softmax(outputs[k])``
    (or :func:`regression_metrics` of its mean and :func:`gaussian_variance`), the ensemble's
    is the same metric of the mixture (mean probabilities; the exact Gaussian mixture), and
    ``member_mean`` is the mean of the members' values; one jitted device call, then every value
    is converted to a Python ``float`` (exactly the float32 value computed).

    Args:
      outputs: logits ``(K, B, C)`` (``task="classification"``) or mean-variance outputs
        ``(K, B, 2)`` (``task="gaussian"``).
      targets: labels ``(B,)`` int, or regression targets ``(B,)`` float.
      task: ``"classification"`` or ``"gaussian"``.

    Returns:
      An :class:`EnsembleReport`, ``{"members": [{metric: float}] * K, "member_mean": {...},
        "ensemble": {...}}`` with Python floats (exactly the float32 values computed).

    Raises:
      ValueError: ``task`` is not ``"classification"`` or ``"gaussian"`` (the message lists both);
        ``outputs`` is not ``(K, B, C)`` (``(K, B, 2)`` for ``"gaussian"``) with ``K, B, C >= 1``;
        ``targets`` is not ``(B,)``; or a label is outside ``[0, C)``.
      TypeError: an argument is a Python list or not an array, ``outputs`` is not floating-point,
        or ``targets`` is not of an integer dtype (``"classification"``) or not numeric
        (``"gaussian"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan.ensemble import ensemble_report
      >>> logits = jnp.array([[[3.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 3.0]]])   # (K=2, B=2, C=2)
      >>> report = ensemble_report(logits, jnp.array([0, 1]), task="classification")
      >>> len(report["members"]), report["ensemble"]["accuracy"]
      (2, 1.0)
      >>> report["ensemble"]["nll"] < report["member_mean"]["nll"], type(report["ensemble"]["nll"])
      (True, <class 'float'>)
    """
    task = check_task(task, allowed=("classification", "gaussian"), what=" for a metrics report")
    outputs, targets = _check_report_arrays(outputs, targets, task)
    report = _classification_report(outputs, targets) if task == "classification" else \
        _regression_report(outputs, targets)
    names = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    members = jax.device_get(report["members"])
    k = outputs.shape[0]
    per_member = [{name: float(members[name][i]) for name in names} for i in range(k)]
    member_mean = {name: float(jnp.mean(jnp.asarray(members[name]))) for name in names}
    ensemble_metrics = jax.device_get(report["ensemble"])
    ensemble = {name: float(ensemble_metrics[name]) for name in names}
    return {"members": per_member, "member_mean": member_mean, "ensemble": ensemble}


def _check_report_arrays(outputs: Any, targets: Any, task: str) -> tuple[Any, Any]:
    layout = "logits (K, B, C)" if task == "classification" else "mean-variance outputs (K, B, 2)"
    outputs = array_arg("outputs", outputs, kind="float", what=f"float member {layout}", ndim=3)
    if 0 in outputs.shape:
        raise ValueError(f"outputs must be {layout} with at least one member, example and output, got "
                         f"{describe(outputs)}.")
    if task == "gaussian" and outputs.shape[-1] != 2:
        raise ValueError(f"outputs must be {layout} for task='gaussian' (mean, raw scale), got {describe(outputs)}; "
                         f"a last axis of {outputs.shape[-1]} is not a mean-variance pair.")
    b = outputs.shape[1]
    if task == "classification":
        targets = array_arg("targets", targets, kind="int", what=f"integer class labels ({b},)", ndim=1)
    else:
        targets = array_arg("targets", targets, kind="real", what=f"regression targets ({b},)", ndim=1)
    if targets.shape[0] != b:
        raise ValueError(f"targets must have one entry per example of outputs {tuple(outputs.shape)}, shape ({b},), "
                         f"got {describe(targets)}.")
    if task == "classification":
        check_labels_in_range("targets", targets, outputs.shape[-1])
    return outputs, targets


_LABELS = {"accuracy": "accuracy", "nll": "NLL", "brier": "Brier", "ece": "ECE", "rmse": "RMSE",
           "coverage_2sigma": "2σ coverage"}


def report_table(metrics: EnsembleReport) -> tuple[list[str], list[tuple[str, list[float]]]]:
    """A report as a table: one row per member, their mean, and the ensemble.

    Guarantee: pure reformatting, no computation: ``K + 2`` rows (members in order, then
    ``"member mean"`` and ``"ensemble"``), each with one value per label, in the order of the
    report's ``"ensemble"`` dict, the values the report's floats unchanged.

    Args:
      metrics: an :class:`EnsembleReport`, as :func:`ensemble_report` returns it.

    Returns:
      ``(labels, rows)``: the metric column labels, and ``(row name, values)`` pairs.

    Raises:
      TypeError: ``metrics`` is not a dict, or its ``"members"`` is not a list of dicts.
      ValueError: ``metrics`` lacks ``"ensemble"``, ``"members"`` or ``"member_mean"``, or a
        member or ``"member_mean"`` lacks a metric the ensemble has (the message names it: it is
        not a report from :func:`ensemble_report`).

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan.ensemble import ensemble_report, report_table
      >>> logits = jnp.array([[[3.0, 0.0]], [[1.0, 0.0]]])
      >>> report = ensemble_report(logits, jnp.array([0]), task="classification")
      >>> labels, rows = report_table(report)
      >>> [name for name, _ in rows]
      ['member 0', 'member 1', 'member mean', 'ensemble']
      >>> labels, rows[-1][1] == list(report["ensemble"].values())
      (['accuracy', 'NLL', 'Brier', 'ECE'], True)
    """
    _check_report(metrics)
    names = list(metrics["ensemble"])
    rows = [(f"member {i}", [m[n] for n in names]) for i, m in enumerate(metrics["members"])]
    rows.append(("member mean", [metrics["member_mean"][n] for n in names]))
    rows.append(("ensemble", [metrics["ensemble"][n] for n in names]))
    return [_LABELS.get(n, n) for n in names], rows


def _check_report(metrics: Any) -> None:
    """Raises unless ``metrics`` has the fields :func:`report_table` reads (an :class:`EnsembleReport`)."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a report dict from kf.ensemble.ensemble_report, got "
                        f"{type(metrics).__name__}.")
    fields = ("members", "member_mean", "ensemble")
    missing = [field for field in fields if field not in metrics]
    if missing:
        raise ValueError(f"metrics must be a report from kf.ensemble.ensemble_report with the fields "
                         f"{', '.join(map(repr, fields))}; it lacks {', '.join(map(repr, missing))}.")
    members = metrics["members"]
    if not isinstance(members, Sequence) or isinstance(members, str) or \
            not all(isinstance(m, Mapping) for m in members) or not isinstance(metrics["member_mean"], Mapping) \
            or not isinstance(metrics["ensemble"], Mapping):
        raise TypeError("metrics['members'] must be a list of {metric: value} dicts and metrics['member_mean'] and "
                        "metrics['ensemble'] dicts, as kf.ensemble.ensemble_report returns them.")
    names = list(metrics["ensemble"])
    for where, row in [(f"metrics['members'][{i}]", m) for i, m in enumerate(members)] + \
            [("metrics['member_mean']", metrics["member_mean"])]:
        lacking = [n for n in names if n not in row]
        if lacking:
            raise ValueError(f"{where} lacks the metric(s) {', '.join(map(repr, lacking))} that metrics['ensemble'] "
                             f"has; every row of a report needs the same metrics.")
