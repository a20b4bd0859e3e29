"""The types in keyfan's signatures, in JAX's vocabulary.

Arrays and dtypes are typed as JAX types them (``jax.typing.ArrayLike``, ``jax.typing.DTypeLike``,
``jax.Array``); this module adds the names JAX has no public alias for. Each is defined here
once and used by every keyfan signature.

Examples:
  >>> import keyfan as kf
  >>> from keyfan.typing import KeyLike, ShapeLike
  >>> def noise(key: KeyLike, batch: ShapeLike):
  ...     return kf.normal(key, batch=batch)
  >>> noise(kf.key(0), 3).shape
  (3,)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

import jax
import numpy as np

__all__ = ["InAxes", "KeyLike", "PyTree", "ShapeLike", "StreamName"]

KeyLike: TypeAlias = jax.Array | np.ndarray
"""A key: a typed key array (``kf.key(seed)``, ``jax.random.key(seed)``) or raw ``uint32`` key
data of shape ``(..., 2)`` (``jax.random.PRNGKey(seed)``), as a JAX or NumPy array. Every keyfan
entry point checks it once and raises a ``TypeError`` naming the argument otherwise."""

PyTree: TypeAlias = Any
"""Any JAX pytree (arrays, scalars, and tuples, lists, dicts or registered nodes of them), as in
``jax.tree_util``: what keyfan passes through to the user's function unchanged."""

InAxes: TypeAlias = int | Sequence[Any] | None
"""``jax.vmap``'s ``in_axes``: an int or None for every argument, or a tuple with one pytree
prefix (of ints and Nones) per positional argument."""

ShapeLike: TypeAlias = Sequence[int] | int
"""A shape: a sequence of non-negative ints (``(4, 3)``), or one int for one axis (``4`` is
``(4,)``). NumPy integers and whole floats are accepted; anything else is a ``TypeError`` or
``ValueError`` naming the argument."""

StreamName: TypeAlias = Literal["threefry", "threefry-legacy"]
"""The name of a keyfan stream: ``"threefry"`` (JAX's partitionable Threefry, the default) or
``"threefry-legacy"`` (the stream of JAX 0.4 and earlier)."""
