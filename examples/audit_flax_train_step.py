"""Auditing a Flax training step with kf.audit: the per-example loss with a broadcast dropout
key, and a whole jitted step that reuses one key for dropout and noise, are both found from the
jaxpr (nothing runs), with the line and a fix; the corrected versions pass.

Run: .venv/bin/python examples/audit_flax_train_step.py
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import keyfan as kf


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = nn.relu(nn.Dense(32)(x))
        x = nn.Dropout(0.2, deterministic=not train)(x)
        return nn.Dense(3)(x)


model = MLP()
params = model.init(kf.key(0), jnp.zeros((4,)))["params"]
x, y = jnp.zeros((4,)), jnp.int32(1)  # ONE example: the audit reads per-example shapes


def example_loss(params: Any, x: jax.Array, y: jax.Array, key: jax.Array) -> jax.Array:
    logits = model.apply({"params": params}, x, train=True, rngs={"dropout": key})
    loss: jax.Array = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return loss


# 1. The per-example loss, vmapped over (x, y) with the dropout key broadcast: every example of
#    the batch would get the same dropout mask.
report = kf.audit(example_loss, params, x, y, kf.key(1), in_axes=(None, 0, 0, None))
assert not report.ok and [f.kind for f in report.findings] == [kf.AuditKind.SHARED_DRAW], report
print(report)

# The fix: one key per example (in_axes=0 over kf.fan_out(key, batch)).
assert kf.audit(example_loss, params, x, y, kf.key(1), in_axes=(None, 0, 0, 0)).ok


# 2. A whole training step, audited as one program (in_axes=None): the key is split into the
#    examples' dropout keys and then used again for input noise, so the noise is correlated with
#    the dropout masks (jax.random.split(key, n)[i] and the noise hash the same counters).
optimizer = optax.sgd(0.1)


def train_step(params: Any, opt_state: Any, xs: jax.Array, ys: jax.Array, key: jax.Array) -> Any:
    def batch_loss(params: Any) -> jax.Array:
        keys = jax.random.split(key, xs.shape[0])
        noisy = xs + 0.05 * jax.random.normal(key, xs.shape)  # BUG: the key was split above
        return jax.vmap(example_loss, in_axes=(None, 0, 0, 0))(params, noisy, ys, keys).mean()

    loss, grads = jax.value_and_grad(batch_loss)(params)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss


opt_state = optimizer.init(params)
xs, ys = jnp.zeros((16, 4)), jnp.zeros((16,), jnp.int32)
report = kf.audit(jax.jit(train_step), params, opt_state, xs, ys, kf.key(2), in_axes=None)
assert not report.ok and {f.kind for f in report.findings} == {kf.AuditKind.SPLIT_THEN_REUSE}, report
print(report)


def fixed_step(params: Any, opt_state: Any, xs: jax.Array, ys: jax.Array, key: jax.Array) -> Any:
    def batch_loss(params: Any) -> jax.Array:
        keys = kf.fan_out(kf.named(key, "dropout"), (xs.shape[0],))
        noisy = xs + 0.05 * jax.random.normal(kf.named(key, "noise"), xs.shape)
        return jax.vmap(example_loss, in_axes=(None, 0, 0, 0))(params, noisy, ys, keys).mean()

    loss, grads = jax.value_and_grad(batch_loss)(params)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss


assert kf.audit(jax.jit(fixed_step), params, opt_state, xs, ys, kf.key(2), in_axes=None).ok
params, opt_state, loss = jax.jit(fixed_step)(params, opt_state, xs, ys, kf.key(2))  # and it runs
print(f"fixed step audited clean; one step ran (loss {float(loss):.4f})")
