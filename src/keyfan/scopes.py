"""Declared intent: a scope in which sharing randomness across a batch is on purpose.

``kf.sanitize``, ``kf.vmap(..., randomness="error")`` and ``kf.audit`` flag a random draw whose
key is not mapped over a batch its result reaches. When that sharing is intended (one noise draw
for the whole batch, a shared dropout mask), say so: draws made inside
``with kf.shared_randomness():``, or under ``kf.vmap(..., randomness="same")``, are never
reported as problems (the audit lists them as allowed).

The scope is a ``jax.named_scope``: it costs nothing at run time and is recorded in the name
stack of every equation traced inside it, which is how the checks read it
(``keyfan._keyflow.primitives.declared_shared``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax

from keyfan._keyflow.primitives import SHARED_SCOPE

__all__ = ["shared_randomness"]


@contextlib.contextmanager
def shared_randomness() -> Iterator[None]:
    """Declares the random draws traced inside the block as shared by every example on purpose.

    A draw traced inside is never reported by ``kf.sanitize()`` or ``kf.vmap(...,
    randomness="error")``, and ``kf.audit`` lists it under ``report.allowed`` instead of
    ``report.problems``. Nothing about the values changes: the block only names a
    ``jax.named_scope``, so the compiled program is the same with it and without it.

    Returns:
      A context manager (also usable as a decorator) that enters the scope.

    Raises:
      keyfan.SharedRandomnessError: never for a draw traced inside the block (that is what the
        block declares); an exception raised inside the block passes through unchanged.

    Examples:
      >>> import jax, jax.numpy as jnp, keyfan as kf
      >>> def shared_scale(x, key):
      ...     with kf.shared_randomness():
      ...         scale = jax.random.uniform(key, minval=0.5, maxval=1.5)
      ...     return x * scale
      >>> out = kf.vmap(shared_scale, in_axes=(0, None))(jnp.ones((4, 3)), kf.key(0))
      >>> bool((out == out[0, 0]).all())
      True
      >>> report = kf.audit(shared_scale, jnp.ones(3), kf.key(0), in_axes=(0, None))
      >>> report.ok, len(report.allowed)
      (True, 1)
    """
    with jax.named_scope(SHARED_SCOPE):
        yield
