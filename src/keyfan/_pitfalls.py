"""The per-example randomness bugs keyfan exists to kill, demonstrated next to their fixes.

Each function runs the buggy pattern and the correct one on the same inputs, so the bug is
shown, not described. They back the ``keyfan tour`` table and the tests.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from keyfan._checks import as_size
from keyfan._jaxinternals.core import jaxprs_in_params
from keyfan.recipes import add_noise, check_seed

__all__ = ["BugAndFix", "broadcast_key", "distinct_rows", "one_key_big_shape", "python_loop_unrolls"]


class BugAndFix(NamedTuple):
    """The output of a buggy pattern and of its fix, on the same inputs."""

    bug: Array
    """What the buggy pattern computes."""
    fix: Array
    """What the fixed pattern computes."""


def distinct_rows(x: Array) -> bool:
    """True when the rows ``x[i]`` (flattened) are pairwise distinct, compared bitwise.

    Args:
      x: an array ``(B, ...)`` of any dtype; row ``i`` is ``x[i]``.

    Returns:
      Whether no two rows have the same bits.

    Examples:
      >>> import jax.numpy as jnp
      >>> from keyfan._pitfalls import distinct_rows
      >>> distinct_rows(jnp.array([[1.0, 2.0], [1.0, 2.0]])), distinct_rows(jnp.eye(2))
      (False, True)
    """
    rows = jax.device_get(jnp.asarray(x)).reshape(x.shape[0], -1)
    return len({row.tobytes() for row in rows}) == rows.shape[0]


def broadcast_key(seed: Any, batch_size: Any = 4, n: Any = 3) -> BugAndFix:
    """Per-example noise with the key broadcast by ``in_axes=(0, None)``, and the fix.

    Bug: ``jax.vmap(add_noise, in_axes=(0, None))(xs, key)``: vmap does not split an unmapped
    key, so every example gets the SAME noise (identical rows on zero inputs).
    Fix: ``jax.vmap(add_noise)(xs, jax.random.split(key, batch_size))``.

    Args:
      seed: an integer seed for ``jax.random.PRNGKey`` (checked as the recipes' seeds are).
      batch_size: the number of examples ``B``.
      n: the size of each example.

    Returns:
      ``BugAndFix`` of two float32 arrays ``(batch_size, n)``: noise added to zeros.

    Examples:
      >>> from keyfan._pitfalls import broadcast_key, distinct_rows
      >>> demo = broadcast_key(0, batch_size=4, n=3)
      >>> distinct_rows(demo.bug), distinct_rows(demo.fix)
      (False, True)
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

    Args:
      seed: an integer seed for ``jax.random.PRNGKey``.
      batch_size: the number of examples ``B``.
      n: the size of each example.

    Returns:
      ``BugAndFix`` of two float32 arrays ``(batch_size, n)``; their rows differ.

    Examples:
      >>> from keyfan._pitfalls import one_key_big_shape
      >>> demo = one_key_big_shape(0, 4, 3)
      >>> bool((demo.bug == demo.fix).all())
      False
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

    Args:
      batch_size: the number of keys.
      n: the size of each draw.

    Returns:
      ``(loop_equations, vmap_equations)``, two ints (equations of sub-jaxprs included).

    Examples:
      >>> from keyfan._pitfalls import python_loop_unrolls
      >>> loop8, vmap8 = python_loop_unrolls(8)
      >>> loop32, vmap32 = python_loop_unrolls(32)
      >>> loop32 > loop8 > vmap8 == vmap32
      True
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
            for sub in jaxprs_in_params(eqn.params):
                total += len(sub.eqns)
        return total

    return count(loop), count(mapped)
