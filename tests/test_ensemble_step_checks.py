"""Trainer.step checks the values of ids and labels on every step with new arrays, and skips the
checks only for the very jax.Arrays (immutable) that passed them on the step before."""

from __future__ import annotations

import gc
import weakref

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import keyfan as kf
from keyfan.ensemble import Trainer


def _state(trainer: Trainer):
    x = jnp.ones((4, 2))
    ens = kf.Ensemble.init(nn.Dense(3), kf.key(0), members=2, sample_input=x)
    return trainer.init(ens), x


def test_new_label_and_id_arrays_are_checked_after_a_step_that_passed():
    trainer = Trainer(optax.sgd(0.1))
    state, x = _state(trainer)
    y, ids = jnp.array([0, 1, 2, 0]), jnp.arange(4)
    state, _ = trainer.step(state, x, y, ids)
    state, _ = trainer.step(state, x, y, ids)  # the same arrays: the checks passed already
    with pytest.raises(ValueError, match=r"y must hold class labels in \[0, 3\)"):
        trainer.step(state, x, jnp.array([0, 1, 3, 0]), ids)
    with pytest.raises(ValueError, match="ids must be non-negative"):
        trainer.step(state, x, y, jnp.array([0, 1, -2, 3]))
    labels = np.array([0, 1, 2, 0])  # a NumPy array can change in place: checked every step
    state, _ = trainer.step(state, x, labels, ids)
    labels[2] = 7
    with pytest.raises(ValueError, match=r"y must hold class labels in \[0, 3\)"):
        trainer.step(state, x, labels, ids)


def test_a_consumed_state_is_refused_by_its_first_leaf():
    trainer = Trainer(optax.sgd(0.1))
    state, x = _state(trainer)
    y, ids = jnp.array([0, 1, 2, 0]), jnp.arange(4)
    trainer.step(state, x, y, ids)
    with pytest.raises(ValueError, match=r"consumed by an earlier Trainer\.step"):
        trainer.step(state, x, y, ids)


def test_the_checks_are_skipped_for_the_same_arrays_and_no_batch_is_kept_alive(monkeypatch):
    from keyfan.ensemble import _train_checks

    calls = []
    check = _train_checks.check_step_values
    monkeypatch.setattr(_train_checks, "check_step_values", lambda *args: (calls.append(1), check(*args))[1])
    trainer = Trainer(optax.sgd(0.1))
    state, x = _state(trainer)
    y, ids = jnp.array([0, 1, 2, 0]), jnp.arange(4)
    for _ in range(3):
        state, _ = trainer.step(state, x, y, ids)
    assert len(calls) == 1
    kept = weakref.ref(y), weakref.ref(ids)
    del y, ids
    gc.collect()
    assert [ref() for ref in kept] == [None, None]  # the trainer holds the last checked arrays weakly
    state, _ = trainer.step(state, x, jnp.array([0, 1, 2, 0]), jnp.arange(4))
    assert len(calls) == 2
