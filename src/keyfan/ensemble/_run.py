"""The ``keyfan ensemble`` job: train a deep ensemble on a built-in dataset and evaluate it.

Everything random is derived from one seed with named sub-streams -- ``"data"`` (the dataset),
``"init"`` (member ``i`` is the MLP initialised with ``kf.at(kf.named(key, "init"), i)``),
``"shuffle"`` (the batch order of each epoch) and the members' own dropout keys -- so the same
seed gives the same metrics, bit for bit.

A run writes a checkpoint (:func:`~keyfan.ensemble.save`) under ``<out_dir>/checkpoints`` after
every ``checkpoint_every`` epochs (the newest ``keep`` are kept) beside ``run.json``, its
settings. Started again on the same output directory with the same settings, it resumes from the
newest complete checkpoint (orbax writes a checkpoint into a temporary directory and renames it
when complete, so a run killed during ``save`` leaves nothing that reads as a checkpoint): the
batches of an epoch and the dropout keys of a step depend only on the seed, the epoch and the
step, so the resumed run ends with the bits of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import optax

from keyfan._checks import as_float, as_int
from keyfan.ensemble._checkpoint import latest_step, restore, save
from keyfan.ensemble._data import DATASETS, Dataset, make_dataset
from keyfan.ensemble._ensemble import Ensemble
from keyfan.ensemble._metrics import EnsembleReport, ensemble_report
from keyfan.ensemble._train import Trainer, TrainState
from keyfan.keys import key as make_key
from keyfan.keys import named
from keyfan.keys import step as step_key

__all__ = ["DEFAULTS", "MLP", "RunConfig", "RunResult", "checkpoint_dir", "run_ensemble"]


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
    checkpoint_every: int = 1
    """Epochs between checkpoints (0: none)."""
    keep: int = 2
    """Checkpoints kept (the newest)."""

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(map(repr, DATASETS))}, got {self.dataset!r}.")
        for name, value in DEFAULTS[self.dataset].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        for name in ("members", "epochs", "batch_size", "n_train", "n_test", "hidden", "keep"):
            object.__setattr__(self, name, as_int(name, getattr(self, name), lo=1))
        object.__setattr__(self, "checkpoint_every", as_int("checkpoint_every", self.checkpoint_every, lo=0))
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
    metrics: EnsembleReport
    state: TrainState
    train: Dataset
    test: Dataset
    png: pathlib.Path | None
    json: pathlib.Path | None
    resumed_from: int | None = None
    """The step the run resumed from, or None for a run from step 0."""


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


def _epochs(config: RunConfig) -> int:
    """``config.epochs``, which ``RunConfig`` fills from the dataset's defaults when not given."""
    epochs = config.epochs
    if epochs is None:  # pragma: no cover - __post_init__ always sets it
        raise ValueError("config.epochs is unset; build the config with RunConfig(...).")
    return epochs


def steps_per_epoch(config: RunConfig) -> int:
    return config.n_train // config.batch_size


def train(config: RunConfig, trainer: Trainer, state: TrainState, data: Dataset, *,
          on_epoch: Callable[[int, np.ndarray], None] | None = None,
          on_checkpoint: Callable[[int, TrainState], None] | None = None) -> TrainState:
    """The epochs of ``config`` from the state's step on (a whole number of epochs) to the end;
    ``on_epoch(epoch, losses)`` after each, ``on_checkpoint(epoch, state)`` after every
    ``config.checkpoint_every``-th and the last."""
    key = make_key(config.seed)
    x, y = np.asarray(data.x), np.asarray(data.y)
    first = int(state.step) // steps_per_epoch(config)
    for epoch in range(first, _epochs(config)):
        order = epoch_order(key, epoch, config.n_train)
        losses = []
        for start in range(0, config.n_train, config.batch_size):
            ids = order[start : start + config.batch_size]
            state, loss = trainer.step(state, x[ids], y[ids], ids)
            losses.append(loss)
        if on_epoch is not None:
            on_epoch(epoch, np.mean(np.stack(jax.device_get(losses)), axis=0))
        done = epoch + 1
        if on_checkpoint is not None and config.checkpoint_every and \
                (done % config.checkpoint_every == 0 or done == config.epochs):
            on_checkpoint(epoch, state)
    return state


def checkpoint_dir(config: RunConfig) -> pathlib.Path:
    """Where a run keeps its checkpoints: ``<out_dir>/checkpoints``."""
    return pathlib.Path(config.out_dir) / "checkpoints"


def _settings(config: RunConfig) -> dict[str, Any]:
    """The settings that decide a run's bits (all but where it writes and how often it saves)."""
    skip = ("out_dir", "checkpoint_every", "keep")
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in skip}


def _resume(config: RunConfig, like: TrainState) -> TrainState | None:
    """The newest checkpoint of a run with the same settings in ``config.out_dir`` (``epochs``
    may grow: the first epochs of a run do not depend on how many follow), or None when the
    directory holds no run; raises ``ValueError`` for a run with other settings."""
    run_file = pathlib.Path(config.out_dir) / "run.json"
    if not run_file.is_file() or latest_step(checkpoint_dir(config)) is None:
        return None
    try:
        saved = json.loads(run_file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(run_file)!r} cannot be read ({err}); start over with resume=False "
                         f"(--no-resume) or use another output directory.") from err
    wanted = json.loads(json.dumps(_settings(config)))
    changed = sorted(k for k in set(saved) | set(wanted) if k != "epochs" and saved.get(k) != wanted.get(k))
    if changed:
        raise ValueError(f"the output directory {config.out_dir!r} holds a run with other settings "
                         f"({', '.join(changed)} differ); resume it with its settings, start over with "
                         f"resume=False (--no-resume), or use another output directory.")
    state = restore(checkpoint_dir(config), like=like)
    if int(state.step) > _epochs(config) * steps_per_epoch(config):
        raise ValueError(f"the run in {config.out_dir!r} is past epoch {config.epochs} (its newest checkpoint is at "
                         f"step {int(state.step)}); resume it with at least its epochs, or start over with "
                         f"resume=False (--no-resume).")
    if int(state.step) % steps_per_epoch(config):
        raise ValueError(f"the newest checkpoint under {str(checkpoint_dir(config))!r} is at step {int(state.step)}, "
                         f"not at the end of an epoch of {steps_per_epoch(config)} steps; it is not this run's.")
    return state


def run_ensemble(config: RunConfig, *, on_epoch: Callable[[int, np.ndarray], None] | None = None,
                 write: bool = True, resume: bool = True) -> RunResult:
    """Trains a deep ensemble per ``config``, evaluates it on the test set, writes PNG and JSON.

    Args:
      config: the run's settings.
      on_epoch: called after each epoch with the epoch and the members' mean training losses.
      write: write ``metrics.json`` (the settings but the output directory, and the metrics: the
        same bytes for the same settings), ``ensemble.png``, ``run.json`` and the checkpoints
        under ``config.out_dir``.
      resume: when ``config.out_dir`` holds checkpoints of a run with the same settings,
        continue from the newest (``RunResult.resumed_from``); ``False`` starts over (and
        removes the old checkpoints).

    Returns:
      A :class:`RunResult`; ``metrics`` as in :func:`~keyfan.ensemble.ensemble_report`, plus the
      run's config.

    Raises:
      ValueError: ``config.out_dir`` holds a run with other settings (and ``resume``).
      OSError: a checkpoint cannot be written (full disk, read-only directory); the checkpoints
        before it are intact.
    """
    trainer, state, train_set, test_set = build(config)
    resumed = _resume(config, state) if write and resume else None
    on_checkpoint = None
    if write:
        out = pathlib.Path(config.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if resumed is None:
            shutil.rmtree(checkpoint_dir(config), ignore_errors=True)
        else:
            state = resumed
        (out / "run.json").write_text(json.dumps(_settings(config), indent=2) + "\n")

        def on_checkpoint(epoch: int, current: TrainState) -> None:
            save(checkpoint_dir(config), current, max_to_keep=config.keep)

    state = train(config, trainer, state, train_set, on_epoch=on_epoch, on_checkpoint=on_checkpoint)
    outputs = jax.jit(lambda e, x: e.apply(x))(state.ensemble, test_set.x)
    metrics = ensemble_report(outputs, test_set.y, task=config.task)
    png = js = None
    if write:
        from keyfan.ensemble._plot import plot_run

        out = pathlib.Path(config.out_dir)
        js = out / "metrics.json"
        payload = {"config": _settings(config), "task": config.task, **metrics}
        js.write_text(json.dumps(payload, indent=2) + "\n")
        png = plot_run(state.ensemble, train_set, config, out / "ensemble.png", metrics)
    return RunResult(config, metrics, state, train_set, test_set, png, js,
                     None if resumed is None else int(resumed.step))
