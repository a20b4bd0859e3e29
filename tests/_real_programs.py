"""Real programs with the broadcast-key bug and their fixes, written the way users write them:
plain ``jax.vmap`` inside a jitted step, linen ``nn.vmap``, ``nnx.vmap``, ``eqx.filter_vmap``,
nested vmaps, and the recipes' patterns. Each entry builds ``(function, args)``; calling the
function traces every vmap in it. Shared by the sanitizer's tests and the whole-program audit's.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from flax.training import train_state

import keyfan as kf
from keyfan import recipes

Program = tuple[Callable[..., Any], tuple[Any, ...]]


# -- jax.vmap inside a jitted step -------------------------------------------------------------

def _noisy(x, key):
    return x + 0.1 * jax.random.normal(key, x.shape)


def jax_vmap_step(bug: bool) -> Program:
    @jax.jit
    def step(xs, key):
        if bug:
            return jax.vmap(_noisy, in_axes=(0, None))(xs, key)
        return jax.vmap(_noisy)(xs, jax.random.split(key, xs.shape[0]))
    return step, (jnp.ones((8, 3)), jax.random.key(0))


# -- linen nn.vmap with a dropout stream -------------------------------------------------------

class _Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(16)(x)
        return nn.Dropout(0.5, deterministic=False)(x)


class _LinenModel(nn.Module):
    split: bool

    @nn.compact
    def __call__(self, x):
        block = nn.vmap(_Block, in_axes=0, out_axes=0, variable_axes={"params": None},
                        split_rngs={"params": False, "dropout": self.split})
        return nn.Dense(2)(block()(x))


def linen_vmap_step(bug: bool) -> Program:
    model = _LinenModel(split=not bug)
    x = jnp.ones((8, 4))
    params = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x)["params"]
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(1e-3))

    @jax.jit
    def step(state, x, y, key):
        def loss(p):
            out = state.apply_fn({"params": p}, x, rngs={"dropout": key})
            return jnp.mean((out - y) ** 2)
        return state.apply_gradients(grads=jax.grad(loss)(state.params))

    return step, (state, x, jnp.zeros((8, 2)), jax.random.key(2))


# -- nnx.vmap over a model whose Rngs are (not) split ---------------------------------------------

class _NNXModel(nnx.Module):  # also used by test_audit_real_code
    def __init__(self, rngs: nnx.Rngs):
        self.linear = nnx.Linear(4, 4, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        return self.dropout(self.linear(x))


def nnx_vmap_step(bug: bool) -> Program:
    model = _NNXModel(nnx.Rngs(params=0, dropout=1))
    x = jnp.ones((8, 4))
    if bug:
        def forward(model, x):
            return nnx.vmap(lambda m, xi: m(xi), in_axes=(None, 0))(model, x)
    else:
        def forward(model, x):
            state_axes = nnx.StateAxes({nnx.RngState: 0, ...: None})

            @nnx.split_rngs(splits=x.shape[0], only="dropout")
            @nnx.vmap(in_axes=(state_axes, 0))
            def per_example(m, xi):
                return m(xi)
            return per_example(model, x)
    return nnx.jit(forward), (model, x)


# -- eqx.filter_vmap over a model whose dropout key is closed over -------------------------------

class _EqxModel(eqx.Module):
    linear: eqx.nn.Linear
    dropout: eqx.nn.Dropout

    def __init__(self, key):
        self.linear = eqx.nn.Linear(4, 4, key=key)
        self.dropout = eqx.nn.Dropout(0.5)

    def __call__(self, x, key):
        return self.dropout(self.linear(x), key=key)


def equinox_vmap_step(bug: bool) -> Program:
    model = _EqxModel(jax.random.key(0))

    @eqx.filter_jit
    def step(model, xs, key):
        if bug:
            return eqx.filter_vmap(lambda x: model(x, key))(xs)
        keys = jax.random.split(key, xs.shape[0])
        return eqx.filter_vmap(lambda x, k: model(x, k))(xs, keys)

    return step, (model, jnp.ones((8, 4)), jax.random.key(1))


def equinox_ensemble() -> Program:
    """A correct Equinox ensemble: filter_vmap over one key per member."""
    def make(key):
        return _EqxModel(key)

    @eqx.filter_jit
    def build_and_run(keys, x, dropout_key):
        members = eqx.filter_vmap(make)(keys)
        member_keys = jax.random.split(dropout_key, keys.shape[0])
        return eqx.filter_vmap(lambda m, k: m(x, k))(members, member_keys)

    return build_and_run, (jax.random.split(jax.random.key(0), 4), jnp.ones(4), jax.random.key(1))


# -- heads inside tokens inside the batch ----------------------------------------------------------

LEVELS = ("batch", "tokens", "heads")


def nested_heads(broadcast_at: str | None) -> Program:
    """vmap over heads inside a vmap over tokens inside a vmap over the batch; the key is
    broadcast at one level (or at none)."""
    def head(x, key):
        return x + jax.random.normal(key, x.shape)

    def per_level(fn, level):
        if level == broadcast_at:
            return jax.vmap(fn, in_axes=(0, None))
        return lambda xs, key: jax.vmap(fn)(xs, jax.random.split(key, xs.shape[0]))

    per_token = per_level(head, "heads")
    per_example = per_level(per_token, "tokens")
    per_batch = per_level(per_example, "batch")
    return jax.jit(per_batch), (jnp.zeros((2, 3, 4, 5)), jax.random.key(0))


# -- the recipes' patterns ------------------------------------------------------------------------

def augment(bug: bool) -> Program:
    images = jnp.full((4, 232, 232, 3), 0.5)
    key = jax.random.PRNGKey(0)
    if bug:
        return jax.jit(lambda k, im: jax.vmap(recipes.augment_image, in_axes=(None, 0))(k, im)), (key, images)
    return jax.jit(recipes.augment_batch), (key, images)


def model_step(bug: bool) -> Program:
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    key = jax.random.PRNGKey(0)
    if not bug:
        return recipes.model_step, (params, jnp.ones((6, 3)), key)

    @jax.jit
    def step(params, x_batch, key):
        def one(x, k):
            noisy = recipes.add_noise(x, k)
            return recipes.per_example_dropout(noisy @ params["w"] + params["b"], k)
        return jax.vmap(one, in_axes=(0, None))(x_batch, key)
    return step, (params, jnp.ones((6, 3)), key)


BUGGY: dict[str, Callable[[], Program]] = {
    "jax.vmap in a jitted step": partial(jax_vmap_step, True),
    "linen nn.vmap, split_rngs dropout False": partial(linen_vmap_step, True),
    "nnx.vmap, Rngs not split": partial(nnx_vmap_step, True),
    "eqx.filter_vmap, closed-over key": partial(equinox_vmap_step, True),
    **{f"nested vmaps, broadcast at {level}": partial(nested_heads, level) for level in LEVELS},
    "augment_image, key broadcast": partial(augment, True),
    "model_step, key broadcast": partial(model_step, True),
}

CORRECT: dict[str, Callable[[], Program]] = {
    "jax.vmap in a jitted step": partial(jax_vmap_step, False),
    "linen nn.vmap, split_rngs dropout True": partial(linen_vmap_step, False),
    "nnx.vmap, Rngs split": partial(nnx_vmap_step, False),
    "eqx.filter_vmap, one key per example": partial(equinox_vmap_step, False),
    "equinox ensemble over keys": equinox_ensemble,
    "nested vmaps, keys split at every level": partial(nested_heads, None),
    "augment_batch": partial(augment, False),
    "model_step": partial(model_step, False),
    "nn_vmap_forward (shared parameters)": lambda: (recipes.nn_vmap_forward, (0, jnp.ones((4, 5)), 3)),
    "jax.random outside any vmap": lambda: (jax.jit(lambda k: jax.random.normal(k, (4,))), (jax.random.key(0),)),
    "kf.vmap randomness='same'": lambda: (kf.vmap(_noisy, in_axes=(0, None), randomness="same"),
                                           (jnp.ones((4, 3)), kf.key(0))),
    "kf.shared_randomness()": lambda: (jax.vmap(_shared_noise, in_axes=(0, None)), (jnp.ones((4, 3)), kf.key(0))),
}


def _shared_noise(x, key):
    with kf.shared_randomness():
        return _noisy(x, key)
