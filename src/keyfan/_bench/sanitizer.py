"""The sanitizer's cost: trace time of a transformer-sized training step with and without it.

The step is a 4-layer pre-norm transformer encoder (model width 256, 4 heads, MLP 1024, dropout
0.1, 128 tokens) written for ONE example and lifted over a batch of 16 with linen ``nn.vmap``
(shared parameters, one dropout stream per example), trained with ``optax.adamw`` under
``jax.jit``. Each timed call traces the step anew (``jax.jit(step).trace``, JAX's caches cleared
first in both cases, so neither reuses a trace); nothing is compiled or run. The compiled
program is the same with and without the check (``tests/test_sanitize.py``).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

import keyfan as kf
from keyfan._bench.runner import Case

__all__ = ["sanitizer_cases"]

GROUP = "sanitizer trace time (transformer step)"


class _Layer(nn.Module):
    width: int = 256
    heads: int = 4
    hidden: int = 1024
    rate: float = 0.1

    @nn.compact
    def __call__(self, x):
        y = nn.MultiHeadDotProductAttention(num_heads=self.heads, dropout_rate=self.rate,
                                            deterministic=False)(nn.LayerNorm()(x))
        x = x + nn.Dropout(self.rate, deterministic=False)(y)
        y = nn.Dense(self.width)(nn.gelu(nn.Dense(self.hidden)(nn.LayerNorm()(x))))
        return x + nn.Dropout(self.rate, deterministic=False)(y)


class _Encoder(nn.Module):
    layers: int = 4
    vocab: int = 1000
    width: int = 256

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(self.vocab, self.width)(tokens)
        for _ in range(self.layers):
            x = _Layer(width=self.width)(x)
        return nn.Dense(2)(nn.LayerNorm()(x.mean(axis=0)))


class _Batched(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        per_example = nn.vmap(_Encoder, in_axes=0, out_axes=0, variable_axes={"params": None},
                              split_rngs={"params": False, "dropout": True})
        return per_example()(tokens)


def transformer_step(batch: int = 16, tokens: int = 128):
    """``(step, args)``: the jitted training step of the module docstring and its arguments."""
    model = _Batched()
    x = jnp.zeros((batch, tokens), jnp.int32)
    params = jax.jit(model.init)({"params": kf.key(0), "dropout": kf.key(1)}, x)["params"]
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.adamw(1e-3))

    def step(state, x, y, key):
        def loss(p):
            logits = state.apply_fn({"params": p}, x, rngs={"dropout": key})
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return state.apply_gradients(grads=jax.grad(loss)(state.params))

    return step, (state, x, jnp.zeros(batch, jnp.int32), kf.key(2))


def sanitizer_cases() -> list[Case]:
    step, args = transformer_step()

    def plain():
        jax.clear_caches()
        jax.jit(step).trace(*args)

    def sanitized():
        jax.clear_caches()
        with kf.sanitize():
            jax.jit(step).trace(*args)

    return [Case("trace without the check", GROUP, plain, 0, "canonical"),
            Case("trace under kf.sanitize()", GROUP, sanitized, 0, "kf.sanitize")]
