"""Declared intent: a scope in which sharing randomness across a batch is on purpose.

``keyfan.audit`` flags a random draw whose key is not mapped over a batch axis its result
reaches. When that sharing is intended (one noise draw for the whole batch, a shared dropout
mask), say so: draws made inside ``with kf.shared_randomness():``, or under
``kf.vmap(..., randomness="same")``, are reported as allowed, not as bugs.

The scope is a ``jax.named_scope`` called :data:`SHARED_RANDOMNESS_SCOPE`: it costs nothing at
run time and is recorded in the name stack of every equation traced inside it (relative to the
enclosing call, so an analysis must concatenate name stacks down nested jaxprs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax

__all__ = ["SHARED_RANDOMNESS_SCOPE", "shared_randomness", "in_shared_scope"]

SHARED_RANDOMNESS_SCOPE = "keyfan_shared_randomness"


@contextlib.contextmanager
def shared_randomness() -> Iterator[None]:
    """Marks the random draws traced inside as intentionally shared across batch axes."""
    with jax.named_scope(SHARED_RANDOMNESS_SCOPE):
        yield


def in_shared_scope(name_stack: object) -> bool:
    """True if a (full, concatenated) name stack lies inside :func:`shared_randomness`."""
    return SHARED_RANDOMNESS_SCOPE in str(name_stack).split("/")
