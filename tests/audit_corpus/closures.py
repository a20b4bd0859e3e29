"""Keys that do not come from the arguments: closures and constant seeds."""

import jax
import jax.numpy as jnp

from tests.audit_corpus._case import KEY, X, bug, noisy, ok

GLOBAL_KEY = jax.random.key(42)
GLOBAL_RAW = jax.random.PRNGKey(42)


@bug(X, in_axes=0, kinds=("closure-key",), why="A module-level key captured by the mapped function.")
def closure_global_key(x):
    return noisy(x, GLOBAL_KEY)


@bug(X, in_axes=0, kinds=("closure-key",), why="A captured raw key.")
def closure_global_raw_key(x):
    return noisy(x, GLOBAL_RAW)


def _make_step(key):
    def step(x):
        return noisy(x, key)
    return step


closure_factory_key = _make_step(KEY)
closure_factory_key.__name__ = "closure_factory_key"
bug(X, in_axes=0, kinds=("closure-key",),
    why="A step function built by a factory that closes over the key.")(closure_factory_key)


@bug(X, in_axes=0, kinds=("closure-key",), why="A captured key used inside an inner jit.")
def closure_key_in_jit(x):
    return jax.jit(lambda x: noisy(x, GLOBAL_KEY))(x)


@bug(X, in_axes=0, kinds=("constant-key",), why="PRNGKey(0) inside the mapped function: a constant seed.")
def constant_seed_inside(x):
    return noisy(x, jax.random.PRNGKey(0))


@ok(X, KEY, in_axes=(0, 0), why="The fix: the key is an argument, mapped.")
def key_as_argument(x, key):
    return noisy(x, key)


@ok(X, in_axes=0, why="A closure over non-random constants is fine.")
def closure_over_weights(x):
    return jnp.tanh(x * jnp.arange(3.0))


@ok(X, jnp.int32(0), in_axes=(0, 0), why="A captured key made per example by folding in a mapped id.")
def closure_key_folded_with_mapped_id(x, i):
    return noisy(x, jax.random.fold_in(GLOBAL_KEY, i))
