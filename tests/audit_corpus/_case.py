"""One corpus entry: a per-example function, its example arguments, its vmaps, and its verdict."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

X = jnp.zeros(3, jnp.float32)
"""One example's features."""
KEY = jax.random.key(0)
"""A typed key (one example's key, or the batch key when unmapped)."""
RAW = jax.random.PRNGKey(0)
"""A raw uint32[2] key."""


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    f: Callable[..., Any]
    args: tuple[Any, ...]
    in_axes: Any
    buggy: bool
    why: str
    """The pitfall, and why the verdict is what it is."""
    kinds: frozenset[str] = frozenset()
    """Finding kinds a buggy snippet must get."""
    allowed: bool = False
    """A correct snippet whose declared sharing must be reported as allowed."""
    axis_name: Any = None
    runtime: bool = False
    """Checked at run time with keyfan.check_independent: ``f()`` returns the batch to check."""
    limit: str = ""
    """Why the audit gets this snippet wrong (a known limit, an xfail in the test), or ``""``."""


CASES: list[Case] = []


def _register(buggy: bool, args: tuple[Any, ...], in_axes: Any, why: str, kinds: tuple[str, ...] = (),
              allowed: bool = False, axis_name: Any = None, runtime: bool = False, limit: str = ""
              ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(f: Callable[..., Any]) -> Callable[..., Any]:
        name = f"{f.__module__.rsplit('.', 1)[-1]}.{f.__name__}"
        if any(c.name == name for c in CASES):
            raise ValueError(f"duplicate corpus case {name}")
        CASES.append(Case(name, f, args, in_axes, buggy, why, frozenset(kinds), allowed, axis_name, runtime,
                          limit))
        return f
    return register


def bug(*args: Any, in_axes: Any = 0, why: str, kinds: tuple[str, ...], axis_name: Any = None,
        runtime: bool = False, limit: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers a snippet that misuses keys; the audit must flag ``kinds`` (unless ``limit``
    explains why it cannot)."""
    return _register(True, args, in_axes, why, kinds, axis_name=axis_name, runtime=runtime, limit=limit)


def ok(*args: Any, in_axes: Any = 0, why: str, allowed: bool = False, axis_name: Any = None,
       runtime: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers a correct snippet; the audit must not flag it."""
    return _register(False, args, in_axes, why, allowed=allowed, axis_name=axis_name, runtime=runtime)


def noisy(x: jax.Array, key: jax.Array) -> jax.Array:
    """The canonical per-example function: x plus standard normal noise."""
    return x + jax.random.normal(key, x.shape)
