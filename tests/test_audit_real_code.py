"""kf.audit on real training code: traced the way jax.jit / eqx.filter_jit / nnx.jit trace it.

Python numbers inside argument pytrees are traced (a fresh ``TrainState`` has ``step=0``, and an
optax warmup schedule divides by it), non-array leaves pass through (an Equinox model returned
from its train step holds ``jax.nn.relu``), NNX modules and ``nnx.Rngs`` are arguments like any
pytree, and a function that cannot be traced is reported as keyfan's error naming the arguments.
"""

from __future__ import annotations

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx
from flax.training import train_state

import keyfan as kf
from tests._real_programs import _NNXModel


class _MLP(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.relu(nn.Dense(8)(x))
        x = nn.Dropout(0.1, deterministic=not train)(x)
        return nn.Dense(2)(x)


def _rsqrt_warmup(step):
    # A warmup schedule in the style of the transformer examples: 0.0 ** -0.5 if step is folded in.
    step = jnp.maximum(step, 1)
    return 1e-3 * jnp.minimum(step ** -0.5, step * 100.0 ** -1.5)


def _fresh_state() -> train_state.TrainState:
    model = _MLP()
    params = model.init(jax.random.key(0), jnp.ones((1, 4)))["params"]
    return train_state.TrainState.create(apply_fn=model.apply, params=params,
                                         tx=optax.adam(optax.schedules.warmup_cosine_decay_schedule(
                                             0.0, 1e-3, 10, 100)))


def _linen_step(state, x, y, key):
    def loss(p):
        out = state.apply_fn({"params": p}, x, rngs={"dropout": jax.random.fold_in(key, state.step)})
        return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()
    grads = jax.grad(loss)(state.params)
    return state.apply_gradients(grads=grads), _rsqrt_warmup(state.step)


def test_fresh_train_state_with_a_warmup_schedule_is_analysed():
    state = _fresh_state()
    assert isinstance(state.step, int) and state.step == 0  # the Python int jit would trace
    report = kf.audit(_linen_step, state, jnp.ones((8, 4)), jnp.zeros(8, jnp.int32), jax.random.key(1),
                      in_axes=None)
    assert report.ok, report
    assert report.draws >= 1
    # The same step jitted gives the same answer as when audited: nothing was folded in.
    jax.jit(_linen_step)(state, jnp.ones((8, 4)), jnp.zeros(8, jnp.int32), jax.random.key(1))


def test_fresh_train_state_step_folded_as_a_constant_fails_like_the_users_code():
    state = _fresh_state()
    with pytest.raises(kf.AuditTraceError, match=r"could not trace .*ZeroDivisionError") as info:
        kf.audit(lambda s, x: (x, 0.0 ** -0.5 if s == 0 else 1.0), 0, jnp.ones(2), in_axes=None, static_argnums=0)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    # static_argnums=() traces every leaf, bare numbers included, exactly as jax.jit does.
    assert kf.audit(lambda step, x: x * step, 3, jnp.ones(2), in_axes=None, static_argnums=()).ok
    assert kf.audit(_linen_step, state, jnp.ones((8, 4)), jnp.zeros(8, jnp.int32), jax.random.key(1),
                    in_axes=None, static_argnums=()).ok


class _EqxMLP(eqx.Module):
    layers: eqx.nn.MLP
    dropout: eqx.nn.Dropout

    def __init__(self, key):
        self.layers = eqx.nn.MLP(4, 2, 8, 2, activation=jax.nn.relu, key=key)
        self.dropout = eqx.nn.Dropout(0.1)

    def __call__(self, x, key):
        return self.dropout(self.layers(x), key=key)


@eqx.filter_jit
def _eqx_step(model, opt_state, xs, ys, key, optimizer):
    keys = jax.random.split(key, xs.shape[0])

    def loss(m):
        out = jax.vmap(m)(xs, keys)
        return jnp.mean((out - ys) ** 2)

    grads = eqx.filter_grad(loss)(model)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    return eqx.apply_updates(model, updates), opt_state


def test_equinox_train_step_that_returns_the_model_is_analysed():
    model = _EqxMLP(jax.random.key(0))
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    report = kf.audit(_eqx_step, model, opt_state, jnp.ones((8, 4)), jnp.zeros((8, 2)), jax.random.key(1),
                      optimizer, in_axes=None)
    assert report.ok, report


def test_equinox_closed_over_key_in_filter_vmap_is_found_in_the_whole_step():
    model = _EqxMLP(jax.random.key(0))

    @eqx.filter_jit
    def step(model, xs, key):
        return eqx.filter_vmap(lambda x: model(x, key))(xs)

    report = kf.audit(step, model, jnp.ones((8, 4)), jax.random.key(1), in_axes=None)
    assert [f.kind.value for f in report.problems] == ["shared-draw"], report
    assert "test_audit_real_code.py" in report.problems[0].location
    assert "eqx.filter_vmap" in report.problems[0].message


def test_nnx_module_and_rngs_as_arguments():
    model = _NNXModel(nnx.Rngs(params=0, dropout=1))
    x = jnp.ones((8, 4))
    assert kf.audit(lambda m, x: m(x), model, x, in_axes=None).ok
    rngs = nnx.Rngs(0)
    assert kf.audit(lambda r, x: x + jax.random.normal(r(), x.shape), rngs, x, in_axes=None).ok
    bug = kf.audit(lambda m, x: nnx.vmap(lambda m, xi: m(xi), in_axes=(None, 0))(m, x), model, x, in_axes=None)
    assert [f.kind.value for f in bug.problems] == ["shared-draw"], bug
    assert "nnx.vmap" in bug.problems[0].message and "nnx.split_rngs" in bug.problems[0].fix


def test_whole_program_audit_reports_the_inner_vmap_line_in_jit_scan_cond_checkpoint():
    def noisy(x, key):
        return x + jax.random.normal(key, x.shape)

    def in_scan(xs, key):
        def body(c, _):
            return c, jax.vmap(noisy, in_axes=(0, None))(xs, key)
        return jax.lax.scan(body, 0, None, length=2)[1]

    def in_cond(xs, key):
        return jax.lax.cond(xs.sum() > 0, lambda: jax.vmap(noisy, in_axes=(0, None))(xs, key), lambda: xs)

    def in_checkpoint(xs, key):
        return jax.checkpoint(lambda xs: jax.vmap(noisy, in_axes=(0, None))(xs, key))(xs)

    for program in (jax.jit(in_scan), in_cond, in_checkpoint):
        report = kf.audit(program, jnp.ones((4, 3)), jax.random.key(0), in_axes=None)
        shared = [f for f in report.problems if f.kind.value == "shared-draw"]
        assert len(shared) == 1 and "test_audit_real_code.py" in shared[0].location, report
    # In the scan, the same key is also drawn from on every iteration: that is a second bug.
    assert {f.kind.value for f in kf.audit(jax.jit(in_scan), jnp.ones((4, 3)), jax.random.key(0),
                                           in_axes=None).problems} == {"shared-draw", "loop-reuse"}


def test_audit_with_a_non_array_output_and_argument():
    def f(params, x, activation):
        return {"out": activation(x @ params), "activation": activation, "name": "layer"}
    assert kf.audit(f, jnp.ones((3, 2)), jnp.ones(3), jax.nn.relu, in_axes=None).ok
