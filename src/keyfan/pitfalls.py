"""The per-example randomness bugs keyfan exists to kill, demonstrated next to their fixes.

Each function runs the buggy pattern and the correct one on the same inputs, so the bug is
shown, not described. They back the ``keyfan tour`` table and the tests.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.extend.core
import jax.numpy as jnp
from jax import Array

from keyfan._checks import as_size
from keyfan.recipes import add_noise, check_seed

__all__ = ["BugAndFix", "broadcast_key", "distinct_rows", "one_key_big_shape", "python_loop_unrolls"]


class BugAndFix(NamedTuple):
    """The output of a buggy pattern and of its fix, on the same inputs."""

    bug: Array
    fix: Array


def distinct_rows(x: Array) -> bool:
    """True when the rows ``x[i]`` (flattened) are pairwise distinct, compared bitwise."""
    rows = jax.device_get(jnp.asarray(x)).reshape(x.shape[0], -1)
    return len({row.tobytes() for row in rows}) == rows.shape[0]


def broadcast_key(seed: Any, batch_size: Any = 4, n: Any = 3) -> BugAndFix:
    """Per-example noise with the key broadcast by ``in_axes=(0, None)``, and the fix.

    Bug: ``jax.vmap(add_noise, in_axes=(0, None))(xs, key)``: vmap does not split an unmapped
    key, so every example gets the SAME noise (identical rows on zero inputs).
    Fix: ``jax.vmap(add_noise)(xs, jax.random.split(key, batch_size))``.

    Returns:
      ``BugAndFix`` of two float32 arrays ``(batch_size, n)``.
    """
    key = jax.random.PRNGKey(check_seed(seed))
    batch_size = as_size("batch_size", batch_size)
    xs = jnp.zeros((batch_size, as_size("n", n)))
    bug = jax.vmap(add_noise, in_axes=(0, None))(xs, key)
    fix = jax.vmap(add_noise)(xs, jax.random.split(key, batch_size))
    return BugAndFix(bug, fix)


def one_key_big_shape(seed: Any, batch_size: Any = 4, n: Any = 3) -> BugAndFix:
    """``normal(key, (batch_size, n))`` versus one split key per example.

    The big-shape draw is ONE draw: its rows are not the per-example draws, and row ``i``
    changes when ``batch_size`` changes (on the legacy stream) or cannot be recomputed from an
    example's own key. The fix draws each row from ``split(key, batch_size)[i]``.
    """
    key = jax.random.PRNGKey(check_seed(seed))
    batch_size = as_size("batch_size", batch_size)
    n = as_size("n", n)
    bug = jax.random.normal(key, (batch_size, n))
    fix = jax.vmap(lambda k: jax.random.normal(k, (n,)))(jax.random.split(key, batch_size))
    return BugAndFix(bug, fix)


def python_loop_unrolls(batch_size: Any = 8, n: Any = 3) -> tuple[int, int]:
    """Equations in the jaxpr of a Python loop over keys versus ``vmap``, for ``batch_size`` keys.

    A loop over the split keys is unrolled by ``jit``: its program grows with the batch size
    (and so does its compile time); the ``vmap`` program does not.

    Returns:
      ``(loop_equations, vmap_equations)``.
    """
    batch_size = as_size("batch_size", batch_size)
    n = as_size("n", n)

    def loop(key: Array) -> Array:
        keys = jax.random.split(key, batch_size)
        return jnp.stack([jax.random.normal(keys[i], (n,)) for i in range(batch_size)])

    def mapped(key: Array) -> Array:
        return jax.vmap(lambda k: jax.random.normal(k, (n,)))(jax.random.split(key, batch_size))

    key = jax.random.PRNGKey(0)

    def count(f) -> int:
        jaxpr = jax.make_jaxpr(f)(key).jaxpr
        total = 0
        for eqn in jaxpr.eqns:
            total += 1
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                total += len(sub.eqns)
        return total

    return count(loop), count(mapped)
