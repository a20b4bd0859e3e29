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
from typing import Any

import jax
import jax.numpy as jnp

from keyfan.ensemble._predict import gaussian_variance
from keyfan.ensemble._tasks import check_task

__all__ = ["CLASSIFICATION_METRICS", "REGRESSION_METRICS", "classification_metrics", "ensemble_report",
           "regression_metrics", "report_table"]

CLASSIFICATION_METRICS = ("accuracy", "nll", "brier", "ece")
REGRESSION_METRICS = ("rmse", "nll", "coverage_2sigma")
ECE_BINS = 15
_EPS = 1e-12


def classification_metrics(probs: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """Accuracy, NLL, Brier score and expected calibration error (ECE) of class probabilities.

    Args:
      probs: float ``(B, C)``, rows summing to 1.
      labels: int ``(B,)`` in ``[0, C)``.

    Returns:
      ``{"accuracy", "nll", "brier", "ece"}``, each a float ``()`` array.

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan.ensemble import classification_metrics
      >>> m = classification_metrics(jnp.array([[0.9, 0.1], [0.2, 0.8]]), jnp.array([0, 1]))
      >>> float(m["accuracy"])
      1.0
    """
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


def _normal_logpdf(y: jax.Array, mean: jax.Array, var: jax.Array) -> jax.Array:
    return -0.5 * (jnp.log(2 * math.pi * var) + jnp.square(y - mean) / var)


def regression_metrics(means: jax.Array, variances: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    """RMSE, mixture NLL and 2-sigma coverage of a mixture of ``M`` Gaussians (``M=1`` for one
    member).

    Args:
      means: float ``(M, B)``.
      variances: float ``(M, B)``, positive.
      targets: float ``(B,)``.

    Returns:
      ``{"rmse", "nll", "coverage_2sigma"}``, each a float ``()`` array.

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan.ensemble import regression_metrics
      >>> m = regression_metrics(jnp.zeros((1, 4)), jnp.ones((1, 4)), jnp.array([0.0, 1.0, -1.0, 3.0]))
      >>> float(m["coverage_2sigma"])
      0.75
    """
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


def ensemble_report(outputs: jax.Array, targets: jax.Array, *, task: str) -> dict[str, Any]:
    """Per-member, member-mean and ensemble metrics from member outputs ``(K, B, ...)``.

    Args:
      outputs: logits ``(K, B, C)`` (``task="classification"``) or mean-variance outputs
        ``(K, B, 2)`` (``task="gaussian"``).
      targets: labels ``(B,)`` int, or regression targets ``(B,)`` float.
      task: ``"classification"`` or ``"gaussian"``.

    Returns:
      ``{"members": [{metric: float}] * K, "member_mean": {...}, "ensemble": {...}}`` with Python
        floats (exactly the float32 values computed).

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan.ensemble import ensemble_report
      >>> logits = jnp.array([[[3.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 3.0]]])   # (K=2, B=2, C=2)
      >>> report = ensemble_report(logits, jnp.array([0, 1]), task="classification")
      >>> len(report["members"]), report["ensemble"]["accuracy"]
      (2, 1.0)
    """
    task = check_task(task, allowed=("classification", "gaussian"), what=" for a metrics report")
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


_LABELS = {"accuracy": "accuracy", "nll": "NLL", "brier": "Brier", "ece": "ECE", "rmse": "RMSE",
           "coverage_2sigma": "2σ coverage"}


def report_table(metrics: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[float]]]]:
    """A report as a table: one row per member, their mean, and the ensemble.

    Args:
      metrics: an :func:`ensemble_report`.

    Returns:
      ``(labels, rows)``: the metric column labels, and ``(row name, values)`` pairs.

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan.ensemble import ensemble_report, report_table
      >>> logits = jnp.array([[[3.0, 0.0]], [[1.0, 0.0]]])
      >>> labels, rows = report_table(ensemble_report(logits, jnp.array([0]), task="classification"))
      >>> [name for name, _ in rows]
      ['member 0', 'member 1', 'member mean', 'ensemble']
    """
    names = list(metrics["ensemble"])
    rows = [(f"member {i}", [m[n] for n in names]) for i, m in enumerate(metrics["members"])]
    rows.append(("member mean", [metrics["member_mean"][n] for n in names]))
    rows.append(("ensemble", [metrics["ensemble"][n] for n in names]))
    return [_LABELS.get(n, n) for n in names], rows
