"""The ``keyfan ensemble`` job: train a deep ensemble on a built-in dataset and evaluate it.

Everything random is derived from one seed with named sub-streams -- ``"data"`` (the dataset),
``"init"`` (member ``i`` is the MLP initialised with ``kf.at(kf.named(key, "init"), i)``),
``"shuffle"`` (the batch order of each epoch) and the members' own dropout keys -- so the same
seed gives the same metrics, bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import optax

from keyfan._checks import as_float, as_int
from keyfan.ensemble._data import DATASETS, Dataset, make_dataset
from keyfan.ensemble._ensemble import Ensemble
from keyfan.ensemble._metrics import ensemble_report
from keyfan.ensemble._train import Trainer, TrainState
from keyfan.keys import key as make_key
from keyfan.keys import named
from keyfan.keys import step as step_key

__all__ = ["DEFAULTS", "MLP", "RunConfig", "RunResult", "run_ensemble"]


class MLP(nn.Module):
    """A small MLP with dropout after each hidden layer; ``train=True`` turns dropout on."""

    hidden: int = 64
    outputs: int = 2
    dropout: float = 0.1
    layers: int = 2

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for _ in range(self.layers):
            x = nn.relu(nn.Dense(self.hidden)(x))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.outputs)(x)


DEFAULTS: dict[str, dict[str, Any]] = {
    "moons": {"epochs": 100, "learning_rate": 3e-3},
    "regression": {"epochs": 200, "learning_rate": 1e-2},
}
"""Per-dataset defaults of the settings left as None."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Settings of one ``keyfan ensemble`` run (validated on construction)."""

    dataset: str = "moons"
    members: int = 8
    epochs: int | None = None
    """Default: ``DEFAULTS[dataset]["epochs"]``."""
    seed: int = 0
    batch_size: int = 64
    n_train: int = 512
    n_test: int = 1024
    hidden: int = 64
    dropout: float = 0.1
    learning_rate: float | None = None
    """Adam's learning rate; default: ``DEFAULTS[dataset]["learning_rate"]``."""
    bootstrap: bool = False
    out_dir: str = "keyfan-out/ensemble"

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(map(repr, DATASETS))}, got {self.dataset!r}.")
        for name, value in DEFAULTS[self.dataset].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        for name in ("members", "epochs", "batch_size", "n_train", "n_test", "hidden"):
            object.__setattr__(self, name, as_int(name, getattr(self, name), lo=1))
        object.__setattr__(self, "seed", as_int("seed", self.seed, lo=-(2**63), hi=2**64))
        object.__setattr__(self, "dropout", as_float("dropout", self.dropout, lo=0.0, hi=1.0, hi_inclusive=False))
        object.__setattr__(self, "learning_rate", as_float("learning_rate", self.learning_rate, lo=0.0))
        if self.n_train % self.batch_size:
            raise ValueError(f"n_train={self.n_train} must be a multiple of batch_size={self.batch_size} "
                             f"(every epoch visits every example once).")

    @property
    def task(self) -> str:
        return "classification" if self.dataset == "moons" else "gaussian"


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a run produced: its metrics report, the trained state, the data, the files written."""

    config: RunConfig
    metrics: dict[str, Any]
    state: TrainState
    train: Dataset
    test: Dataset
    png: pathlib.Path | None
    json: pathlib.Path | None


def build(config: RunConfig) -> tuple[Trainer, TrainState, Dataset, Dataset]:
    """The datasets, trainer and initial state of a run (all from ``config.seed``)."""
    key = make_key(config.seed)
    train, test = make_dataset(config.dataset, named(key, "data"), n_train=config.n_train, n_test=config.n_test)
    model = MLP(hidden=config.hidden, outputs=2, dropout=config.dropout)
    ens = Ensemble.init(model, named(key, "init"), members=config.members, sample_input=train.x[:1])
    loss = "cross_entropy" if config.task == "classification" else "gaussian_nll"
    trainer = Trainer(optax.adam(config.learning_rate), loss=loss, model_kwargs={"train": True})
    state = trainer.init(ens, bootstrap=config.n_train if config.bootstrap else None)
    return trainer, state, train, test


def epoch_order(key: jax.Array, epoch: int, n: int) -> np.ndarray:
    """The example ids of one epoch, in the order they are visited."""
    return np.asarray(jax.random.permutation(step_key(named(key, "shuffle"), epoch), n))


def train(config: RunConfig, trainer: Trainer, state: TrainState, data: Dataset, *,
          on_epoch: Callable[[int, np.ndarray], None] | None = None) -> TrainState:
    """``config.epochs`` epochs of minibatch training; ``on_epoch(epoch, losses)`` after each."""
    key = make_key(config.seed)
    x, y = np.asarray(data.x), np.asarray(data.y)
    for epoch in range(config.epochs):
        order = epoch_order(key, epoch, config.n_train)
        losses = []
        for start in range(0, config.n_train, config.batch_size):
            ids = order[start : start + config.batch_size]
            state, loss = trainer.step(state, x[ids], y[ids], ids)
            losses.append(loss)
        if on_epoch is not None:
            on_epoch(epoch, np.mean(np.stack(jax.device_get(losses)), axis=0))
    return state


def run_ensemble(config: RunConfig, *, on_epoch: Callable[[int, np.ndarray], None] | None = None,
                 write: bool = True) -> RunResult:
    """Trains a deep ensemble per ``config``, evaluates it on the test set, writes PNG and JSON.

    Args:
      config: the run's settings.
      on_epoch: called after each epoch with the epoch and the members' mean training losses.
      write: write ``metrics.json`` (the settings but the output directory, and the metrics: the
        same bytes for the same settings) and ``ensemble.png`` under ``config.out_dir``.

    Returns:
      A :class:`RunResult`; ``metrics`` as in :func:`~keyfan.ensemble.ensemble_report`, plus the
      run's config.
    """
    trainer, state, train_set, test_set = build(config)
    state = train(config, trainer, state, train_set, on_epoch=on_epoch)
    outputs = jax.jit(lambda e, x: e.apply(x))(state.ensemble, test_set.x)
    metrics = ensemble_report(outputs, test_set.y, task=config.task)
    png = js = None
    if write:
        from keyfan.ensemble._plot import plot_run

        out = pathlib.Path(config.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        js = out / "metrics.json"
        settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "out_dir"}
        payload = {"config": settings, "task": config.task, **metrics}
        js.write_text(json.dumps(payload, indent=2) + "\n")
        png = plot_run(state.ensemble, train_set, config, out / "ensemble.png", metrics)
    return RunResult(config, metrics, state, train_set, test_set, png, js)
