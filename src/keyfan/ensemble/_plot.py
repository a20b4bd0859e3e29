"""The run's picture (matplotlib, Agg backend): where the ensemble is unsure.

Classification: the plane shaded by the ensemble's predictive entropy, its decision boundary
(mean probability 0.5) and the training points. Regression: the training points, each member's
mean, and the ensemble's mean with ``+- 2 sigma`` bands (total predictive variance).
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from keyfan.ensemble._data import REGRESSION_RANGE, Dataset, regression_curve
from keyfan.ensemble._metrics import EnsembleReport
from keyfan.ensemble._predict import predict

__all__ = ["plot_run"]

GRID = 160


def _moons(ax: Any, ensemble: Any, data: Dataset) -> Any:
    x = np.asarray(data.x)
    lo, hi = x.min(axis=0) - 0.5, x.max(axis=0) + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], GRID), np.linspace(lo[1], hi[1], GRID))
    grid = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], axis=1), jnp.float32)
    pred = jax.jit(lambda e, g: predict(e, g, task="classification"))(ensemble, grid)
    entropy = np.asarray(pred.entropy).reshape(gx.shape)
    p1 = np.asarray(pred.probs[:, 1]).reshape(gx.shape)
    shade = ax.contourf(gx, gy, entropy, levels=20, cmap="magma")
    ax.contour(gx, gy, p1, levels=[0.5], colors="white", linewidths=1.5)
    y = np.asarray(data.y)
    for label, color in ((0, "#4fc3f7"), (1, "#aed581")):
        ax.scatter(x[y == label, 0], x[y == label, 1], s=8, c=color, edgecolors="black", linewidths=0.3,
                   label=f"class {label}")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return shade


def _regression(ax: Any, ensemble: Any, data: Dataset) -> None:
    lo, hi = REGRESSION_RANGE
    grid = np.linspace(lo - 2.0, hi + 2.0, 400, dtype=np.float32)
    outputs = jax.jit(lambda e, g: e.apply(g))(ensemble, jnp.asarray(grid)[:, None])
    pred = jax.jit(lambda e, g: predict(e, g, task="gaussian"))(ensemble, jnp.asarray(grid)[:, None])
    mean, sigma = np.asarray(pred.mean), np.sqrt(np.asarray(pred.variance))
    for k in range(outputs.shape[0]):
        ax.plot(grid, np.asarray(outputs[k, :, 0]), color="tab:blue", alpha=0.25, linewidth=0.8)
    ax.fill_between(grid, mean - 2 * sigma, mean + 2 * sigma, color="tab:orange", alpha=0.3,
                    label="ensemble mean $\\pm 2\\sigma$")
    ax.plot(grid, mean, color="tab:orange", linewidth=2, label="ensemble mean")
    ax.plot(grid, np.asarray(regression_curve(jnp.asarray(grid))), "k--", linewidth=1, label="true curve")
    ax.scatter(np.asarray(data.x[:, 0]), np.asarray(data.y), s=6, c="black", alpha=0.6, label="training data")
    ax.set_ylim(float(np.min(data.y)) - 2.0, float(np.max(data.y)) + 2.0)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def plot_run(ensemble: Any, data: Dataset, config: Any, path: pathlib.Path, metrics: EnsembleReport) -> pathlib.Path:
    """Draws the run's figure to ``path`` (PNG) and returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=110)
    ens = metrics["ensemble"]
    if config.task == "classification":
        shade = _moons(ax, ensemble, data)
        fig.colorbar(shade, ax=ax, label="predictive entropy (nats)")
        detail = f"accuracy {ens['accuracy']:.3f}, NLL {ens['nll']:.3f}, ECE {ens['ece']:.3f}"
    else:
        _regression(ax, ensemble, data)
        detail = f"RMSE {ens['rmse']:.3f}, NLL {ens['nll']:.3f}, 2σ coverage {ens['coverage_2sigma']:.3f}"
    ax.set_title(f"keyfan deep ensemble: {config.members} members on {config.dataset} (seed {config.seed})\n"
                 f"test {detail}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path
