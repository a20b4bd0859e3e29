"""Training, prediction and checkpoints of keyfan ensembles: reproducible bit for bit."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from keyfan._extras import declared_floor

# keyfan.ensemble refuses a flax older than its extra's floor; the compat stage's lowest JAX has one.
pytest.importorskip("flax", minversion=declared_floor("flax"))

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import keyfan as kf
from keyfan.ensemble import (
    Ensemble,
    Trainer,
    TrainState,
    bootstrap_weights,
    predict,
    restore,
    save,
    summarize,
)
from keyfan.ensemble import latest_step as latest_checkpoint
from keyfan.ensemble._data import make_moons
from tests.conftest import assert_bitwise_equal, assert_trees_bitwise_equal, tree_bits

SEED = 3
DATA = make_moons(kf.key(11), 64)


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Dense(16)(x))
        x = nn.Dropout(0.2, deterministic=not train)(x)
        return nn.Dense(2)(x)


class NNXMLP(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(2, 16, rngs=rngs)
        self.dropout = nnx.Dropout(0.2, rngs=rngs)
        self.out = nnx.Linear(16, 2, rngs=rngs)

    def __call__(self, x):
        return self.out(self.dropout(nnx.relu(self.hidden(x))))


OPTIMIZER = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)
TRAINERS: dict = {}


def trainer_for(model, **kwargs):
    """One Trainer per configuration, shared by the tests (so each compiles once)."""
    if isinstance(model, nn.Module):
        kwargs.setdefault("model_kwargs", {"train": True})
    kwargs.setdefault("optimizer", OPTIMIZER)
    name = repr(sorted((k, repr(v)) for k, v in kwargs.items())) + type(model).__name__
    if name not in TRAINERS:
        optimizer = kwargs.pop("optimizer")
        TRAINERS[name] = Trainer(optimizer, **kwargs)
    return TRAINERS[name]


def fresh(model=None, members=4, seed=SEED, bootstrap=None, learning_rates=None, **trainer_kwargs):
    """A trainer and a new initial state (from the seed alone)."""
    model = MLP() if model is None else model
    ens = Ensemble.init(model, kf.key(seed), members=members, sample_input=DATA.x[:2])
    trainer = trainer_for(model, **trainer_kwargs)
    return trainer, trainer.init(ens, bootstrap=bootstrap, learning_rates=learning_rates)


def run(trainer, state, first, last, batch=16):
    losses = []
    for t in range(first, last):
        ids = (np.arange(batch) + batch * t) % DATA.x.shape[0]
        state, loss = trainer.step(state, DATA.x[ids], DATA.y[ids], ids)
        losses.append(loss)
    return state, losses


# -- reproducibility ---------------------------------------------------------------------------

@pytest.mark.bitwise
@pytest.mark.parametrize("model", [MLP(), NNXMLP], ids=["linen", "nnx"])
def test_training_is_reproducible_bit_for_bit_from_the_seed(model):
    a, b = fresh(model), fresh(model)
    state_a, losses_a = run(*a, 0, 4)
    state_b, losses_b = run(*b, 0, 4)
    assert_trees_bitwise_equal(state_a, state_b)
    assert_trees_bitwise_equal(losses_a, losses_b)
    assert int(state_a.step) == 4
    other, _ = run(*fresh(model, seed=SEED + 1), 0, 4)
    assert tree_bits(other.ensemble.params)[0].tobytes() != tree_bits(state_a.ensemble.params)[0].tobytes()


def test_training_changes_the_members_and_lowers_the_loss():
    trainer, state = fresh()
    start = jax.tree.map(jnp.copy, state.ensemble)  # the steps consume the state they are given
    state, losses = run(trainer, state, 0, 40)
    assert float(jnp.mean(losses[-1])) < float(jnp.mean(losses[0]))
    assert not np.array_equal(tree_bits(start.params)[1], tree_bits(state.ensemble.params)[1])
    assert_bitwise_equal(jax.random.key_data(state.ensemble.keys), jax.random.key_data(start.keys))


def test_dropout_keys_change_the_step_and_can_be_switched_off():
    with_dropout, _ = run(*fresh(), 0, 2)
    without, _ = run(*fresh(dropout=False, model_kwargs={"train": False}), 0, 2)
    assert tree_bits(with_dropout.ensemble.params)[1].tobytes() != tree_bits(without.ensemble.params)[1].tobytes()


@pytest.mark.bitwise
def test_xla_sums_mode_trains_reproducibly_and_close_to_the_invariant_mode():
    exact, _ = run(*fresh(), 0, 3)
    fast_a, _ = run(*fresh(layout_invariant=False), 0, 3)
    fast_b, _ = run(*fresh(layout_invariant=False), 0, 3)
    assert_trees_bitwise_equal(fast_a, fast_b)
    for a, b in zip(tree_bits(exact.ensemble.params), tree_bits(fast_a.ensemble.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_chunks_split_the_batch_without_changing_the_result_much():
    one, _ = run(*fresh(), 0, 2)
    four, _ = run(*fresh(chunks=4), 0, 2)
    for a, b in zip(tree_bits(one.ensemble.params), tree_bits(four.ensemble.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# -- bootstrap and per-member learning rates ---------------------------------------------------

@pytest.mark.bitwise
def test_bootstrap_weights_are_per_member_resamples_and_size_independent():
    keys = kf.fan_out(kf.key(SEED), (6,))
    weights = np.asarray(bootstrap_weights(keys, 50))
    assert weights.shape == (6, 50) and weights.dtype == np.float32
    np.testing.assert_array_equal(weights.sum(axis=1), 50.0)
    assert (weights == 0).any(axis=1).all(), "a bootstrap resample leaves some examples out"
    assert len({row.tobytes() for row in weights}) == 6
    assert_bitwise_equal(bootstrap_weights(keys[:2], 50), weights[:2])


@pytest.mark.bitwise
def test_bootstrap_training_differs_from_plain_training():
    plain, _ = run(*fresh(), 0, 2)
    boot_a, _ = run(*fresh(bootstrap=64), 0, 2)
    boot_b, _ = run(*fresh(bootstrap=64), 0, 2)
    assert_trees_bitwise_equal(boot_a, boot_b)
    assert boot_a.weights.shape == (4, 64)
    assert tree_bits(boot_a.ensemble.params)[1].tobytes() != tree_bits(plain.ensemble.params)[1].tobytes()


def test_per_member_learning_rates():
    rates = [1e-4, 1e-3, 1e-2, 1e-1]
    trainer, state = fresh(learning_rates=rates)
    stored = optax.tree_utils.tree_get(state.opt_state, "learning_rate")
    np.testing.assert_array_equal(stored, np.asarray(rates, np.float32))
    start = tree_bits(state.ensemble.params)[1]
    state, _ = run(trainer, state, 0, 1)
    moved = np.abs(tree_bits(state.ensemble.params)[1] - start).reshape(4, -1).max(axis=1)
    assert np.all(np.diff(moved) > 0), f"a larger learning rate must move a member further: {moved}"
    with pytest.raises(ValueError, match="inject_hyperparams"):
        fresh(optimizer=optax.adam(1e-3), learning_rates=rates)
    with pytest.raises(ValueError, match="4 finite positive"):
        fresh(learning_rates=[1e-3, -1.0, 1e-3, 1e-3])


# -- checkpoints -------------------------------------------------------------------------------

@pytest.mark.bitwise
@pytest.mark.parametrize("model", [MLP(), NNXMLP], ids=["linen", "nnx"])
def test_a_restored_run_continues_bit_identically(tmp_path, model):
    straight, straight_losses = run(*fresh(model, bootstrap=64, learning_rates=[1e-3, 2e-3, 5e-3, 1e-2]), 0, 6)
    trainer, state = fresh(model, bootstrap=64, learning_rates=[1e-3, 2e-3, 5e-3, 1e-2])
    state, first_losses = run(trainer, state, 0, 3)
    path = save(tmp_path / "ckpt", state)
    assert path.name == "3" and latest_checkpoint(tmp_path / "ckpt") == 3
    new_trainer, template = fresh(model, bootstrap=64, learning_rates=[1e-3, 2e-3, 5e-3, 1e-2])
    restored = restore(tmp_path / "ckpt", like=template)
    assert isinstance(restored, TrainState)
    assert_trees_bitwise_equal(restored, state)
    resumed, later_losses = run(new_trainer, restored, 3, 6)
    assert_trees_bitwise_equal(resumed, straight)
    assert_trees_bitwise_equal(first_losses + later_losses, straight_losses)


def test_checkpoint_errors(tmp_path):
    _, state = fresh()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        restore(tmp_path / "nothing", like=state)
    save(tmp_path / "ckpt", state)
    with pytest.raises(FileNotFoundError, match="step 7"):
        restore(tmp_path / "ckpt", like=state, step=7)
    _, bigger = fresh(members=5)
    with pytest.raises(ValueError, match="does not match"):
        restore(tmp_path / "ckpt", like=bigger)
    with pytest.raises(TypeError, match="TrainState"):
        save(tmp_path / "ckpt", state.ensemble)


# -- prediction --------------------------------------------------------------------------------

def test_summaries_against_hand_computed_values():
    logits = jnp.log(jnp.array([[[0.9, 0.1]], [[0.5, 0.5]]], jnp.float32))
    cls = summarize(logits, task="classification")
    np.testing.assert_allclose(cls.probs, [[0.7, 0.3]], rtol=1e-6)
    entropy = -(0.7 * np.log(0.7) + 0.3 * np.log(0.3))
    expected = (-(0.9 * np.log(0.9) + 0.1 * np.log(0.1)) + np.log(2)) / 2
    np.testing.assert_allclose(cls.entropy, [entropy], rtol=1e-5)
    np.testing.assert_allclose(cls.mutual_information, [entropy - expected], rtol=1e-4)
    reg = summarize(jnp.array([[1.0, 2.0], [3.0, 6.0]]), task="regression")
    np.testing.assert_allclose(reg.mean, [2.0, 4.0])
    np.testing.assert_allclose(reg.variance, [1.0, 4.0])
    raw = jnp.log(jnp.expm1(jnp.array([1.0, 3.0])))
    gauss = summarize(jnp.stack([jnp.array([[0.0, raw[0]]]), jnp.array([[2.0, raw[1]]])]), task="gaussian")
    np.testing.assert_allclose(gauss.mean, [1.0], rtol=1e-6)
    np.testing.assert_allclose(gauss.variance, [2.0 + 1.0], rtol=1e-5)


def test_metrics_against_a_numpy_reference():
    """Accuracy, NLL, Brier and 15-bin ECE, and the mixture's RMSE, NLL and 2-sigma coverage,
    recomputed with plain NumPy loops on random inputs."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=200).astype(np.float32)
    labels = rng.integers(0, 3, size=200)
    got = {k: float(v) for k, v in kf.ensemble.classification_metrics(jnp.asarray(probs), jnp.asarray(labels)).items()}
    conf, pred = probs.max(-1), probs.argmax(-1)
    ece = sum(abs(np.sum((pred == labels)[b] - conf[b])) for b in
              [np.minimum((conf * 15).astype(int), 14) == i for i in range(15)]) / 200
    expected = {"accuracy": np.mean(pred == labels), "nll": -np.mean(np.log(probs[np.arange(200), labels])),
                "brier": np.mean(np.sum((probs - np.eye(3)[labels]) ** 2, -1)), "ece": ece}
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)

    means, variances = rng.normal(size=(4, 50)), rng.uniform(0.5, 2.0, size=(4, 50))
    targets = rng.normal(size=50)
    as32 = functools.partial(jnp.asarray, dtype=jnp.float32)
    got = {k: float(v) for k, v in kf.ensemble.regression_metrics(as32(means), as32(variances), as32(targets)).items()}
    mean = means.mean(0)
    var = variances.mean(0) + ((means - mean) ** 2).mean(0)
    density = np.mean(np.exp(-0.5 * (targets - means) ** 2 / variances) / np.sqrt(2 * np.pi * variances), axis=0)
    expected = {"rmse": np.sqrt(np.mean((mean - targets) ** 2)), "nll": -np.mean(np.log(density)),
                "coverage_2sigma": np.mean(np.abs(targets - mean) <= 2 * np.sqrt(var))}
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, err_msg=name)


def test_predict_shapes_and_ranges():
    _, state = fresh(members=3)
    ens = dataclasses.replace(state.ensemble, task=None)   # trained members, no recorded task
    x = DATA.x[:7]
    cls = ens.predict(x, task="classification")
    assert cls.probs.shape == (7, 2) and cls.entropy.shape == (7,) and cls.mutual_information.shape == (7,)
    np.testing.assert_allclose(cls.probs.sum(-1), 1.0, rtol=1e-6)
    assert (cls.mutual_information >= 0).all() and (cls.entropy + 1e-6 >= cls.mutual_information).all()
    assert float(cls.mutual_information.max()) > 0, "members that disagree give mutual information"
    mean, var = ens.predict(x)
    assert mean.shape == var.shape == (7, 2) and (var >= 0).all()
    gauss = predict(ens, x, task="gaussian")
    assert gauss.mean.shape == gauss.variance.shape == (7,) and (gauss.variance > 0).all()
    with pytest.raises(ValueError, match="task must be one of"):
        ens.predict(x, task="ranking")


@pytest.mark.bitwise
@pytest.mark.parametrize(("loss", "task"), [("cross_entropy", "classification"), ("gaussian_nll", "gaussian"),
                                             ("mse", "regression")])
def test_a_trained_ensemble_predicts_as_its_loss_says(loss, task):
    """The trainer records the task its loss implies, so ``predict(x)`` without ``task=`` is the
    right summary (bitwise the explicit one of the same members without a recorded task), a
    conflicting ``task=`` is refused, and the task survives steps and slicing."""
    x = DATA.x[:7]
    y = DATA.y[:16] if loss == "cross_entropy" else DATA.y[:16].astype(jnp.float32)
    trainer, state = fresh(members=3, loss=loss)
    assert state.ensemble.task == task
    state, _ = trainer.step(state, DATA.x[:16], y, np.arange(16))
    ens = state.ensemble
    assert ens.task == task and ens[:2].task == task and f"task={task!r}" in repr(ens)
    untagged = dataclasses.replace(ens, task=None)
    assert_trees_bitwise_equal(ens.predict(x), predict(untagged, x, task=task))
    assert type(ens.predict(x)) is type(summarize(ens(x), task=task))
    for other in sorted({"classification", "gaussian", "regression"} - {task}):
        with pytest.raises(ValueError, match=f"task={other!r} differs from this ensemble's task {task!r}"):
            ens.predict(x, task=other)
    assert_trees_bitwise_equal(ens.predict(x, task=task), ens.predict(x))


def test_task_recorded_at_init_and_checked_against_the_loss(tmp_path):
    x = DATA.x[:2]
    ens = Ensemble.init(MLP(), kf.key(SEED), members=2, sample_input=x, task="classification")
    assert isinstance(ens.predict(x), kf.ensemble.ClassificationPrediction)
    with pytest.raises(ValueError, match="task must be one of"):
        Ensemble.init(MLP(), kf.key(SEED), members=2, sample_input=x, task="logits")
    with pytest.raises(ValueError, match="loss='mse' trains regression members"):
        trainer_for(MLP(), loss="mse").init(ens)
    untagged = Ensemble.init(MLP(), kf.key(SEED), members=2, sample_input=x)
    custom = trainer_for(MLP(), loss=lambda out, label: kf.ensemble.cross_entropy(out, label))
    assert custom.init(untagged).ensemble.task is None and custom.init(ens).ensemble.task == "classification"
    with pytest.raises(ValueError, match="one task"):
        Ensemble.concatenate([ens, untagged])
    assert Ensemble.stack(ens.unstack(), model=MLP(), task="classification").task == "classification"
    with pytest.raises(TypeError, match=r"ensemble must be a kf\.Ensemble"):
        predict(ens.params, x)
    _, state = fresh(members=2)
    save(tmp_path / "ckpt", state)
    assert restore(tmp_path / "ckpt", like=state).ensemble.task == "classification"


def test_ensemble_nll_on_moons_is_lower_than_the_mean_member_nll():
    from keyfan.ensemble._run import RunConfig, run_ensemble

    config = RunConfig(members=4, epochs=6, n_train=128, n_test=256, batch_size=32, seed=0)
    metrics = run_ensemble(config, write=False).metrics
    assert metrics["ensemble"]["nll"] < metrics["member_mean"]["nll"]
    assert metrics["ensemble"]["brier"] < metrics["member_mean"]["brier"]
    assert metrics["ensemble"]["accuracy"] > 0.75


# -- errors ------------------------------------------------------------------------------------

def test_trainer_errors():
    trainer, state = fresh()
    x, y, ids = DATA.x[:16], DATA.y[:16], np.arange(16)
    with pytest.raises(TypeError, match=r"optax\.GradientTransformation"):
        Trainer("adam")
    with pytest.raises(ValueError, match="loss must be one of"):
        Trainer(optax.sgd(0.1), loss="hinge")
    with pytest.raises(ValueError, match="ids must be"):
        trainer.step(state, x, y, ids[:8])
    with pytest.raises(ValueError, match="y must have the batch size"):
        trainer.step(state, x, y[:8], ids)
    with pytest.raises(ValueError, match="multiple of chunks=3"):
        fresh(chunks=3)[0].step(state, x, y, ids)
    with pytest.raises(ValueError, match=r"only the batch size may differ"):
        trainer.step(state, jnp.ones((16, 3)), y, ids)
    _, boot = fresh(bootstrap=64)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 64\)"):
        trainer.step(boot, x, y, ids + 60)
    no_keys = Ensemble.stack(state.ensemble.unstack(), model=MLP())
    with pytest.raises(ValueError, match="no member keys"):
        trainer.init(no_keys)
    assert isinstance(Trainer(optax.sgd(0.1), dropout=False).init(no_keys), TrainState)


def test_value_checks_run_on_every_step_after_the_shape_checks_are_cached():
    # The shape/dtype/model checks run once per input signature; the value checks (labels in
    # range, ids non-negative and below the bootstrap size) must still run on every later step.
    trainer, state = fresh(bootstrap=64)
    x, y, ids = DATA.x[:16], DATA.y[:16], np.arange(16)
    state, _ = trainer.step(state, x, y, ids)
    with pytest.raises(ValueError, match=r"class labels in \[0, 2\)"):
        trainer.step(state, x, y.at[3].set(2), ids)
    with pytest.raises(ValueError, match="non-negative"):
        trainer.step(state, x, y, ids - 1)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 64\)"):
        trainer.step(state, x, y, jnp.asarray(ids + 60))
    with pytest.raises(TypeError, match="integer class labels"):
        trainer.step(state, x, y.astype(jnp.float32), ids)
    with pytest.raises(ValueError, match=r"only the batch size may differ"):
        trainer.step(state, jnp.ones((16, 3)), y, ids)
    state, losses = trainer.step(state, x, y, ids)
    assert losses.shape == (state.ensemble.members,) and int(state.step) == 2


@pytest.mark.bitwise
def test_functional_models_train_with_their_own_key_argument():
    def init_fn(key, x):
        return {"w": 0.1 * jax.random.normal(key, (x.shape[-1], 2)), "b": jnp.zeros(2)}

    def apply_fn(params, x, key=None):
        if key is not None:
            x = jnp.where(jax.random.bernoulli(key, 0.8, x.shape), x / 0.8, 0.0)
        return x @ params["w"] + params["b"]

    run_a, _ = run(*fresh((init_fn, apply_fn)), 0, 3)
    run_b, _ = run(*fresh(functools.partial(lambda m: m, (init_fn, apply_fn))()), 0, 3)
    assert_trees_bitwise_equal(run_a.ensemble.params, run_b.ensemble.params)
