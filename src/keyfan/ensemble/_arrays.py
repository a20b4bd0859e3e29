"""The array arguments of the ensemble: one check of kind, dtype and rank, one of member keys.

Each public metric and loss reads its arrays through :func:`array_arg` before any arithmetic, so
a Python list, a float label, a key or a wrong rank fails with a ``TypeError``/``ValueError``
that names the argument, what it expected and what it got, never with a JAX trace dump or a
silently broadcast result. Only shapes and dtypes are read: the checks are free under ``jit``
and ``vmap`` (a traced array has both). :func:`member_keys_arg` is the one check of a
``(K,)`` array of member keys (``dropout_keys``, ``bootstrap_weights``).
"""

from __future__ import annotations

import numbers
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from keyfan._checks import is_traced
from keyfan._keyarg import KeyArg, check_key

__all__ = ["Kind", "array_arg", "check_labels_in_range", "describe", "member_keys_arg"]

Kind = Literal["float", "int", "real"]

_KIND_WORDS = {"float": "a floating-point", "int": "an integer", "real": "an integer or floating-point"}


def describe(a: Any) -> str:
    """``dtype float32 and shape (3, 2)``: how a message shows an array (never its values or a tracer)."""
    return f"dtype {a.dtype} and shape {tuple(a.shape)}"


def _dtype_ok(dtype: Any, kind: Kind) -> bool:
    if jnp.issubdtype(dtype, jax.dtypes.prng_key) or jnp.issubdtype(dtype, np.bool_):
        return False
    is_int, is_float = jnp.issubdtype(dtype, np.integer), jnp.issubdtype(dtype, np.floating)
    return bool(is_float if kind == "float" else is_int if kind == "int" else is_int or is_float)


def array_arg(name: str, value: Any, *, kind: Kind, what: str, ndim: int | None = None,
              min_ndim: int = 0) -> Any:
    """``value`` as an array (a JAX or NumPy array as is; a Python or NumPy scalar via
    ``jnp.asarray``), or raises.

    Args:
      name: the argument's name, for the message.
      value: the value received.
      kind: the dtypes accepted: ``"float"``, ``"int"`` (booleans excluded) or ``"real"`` (either).
      what: the expected value in words with its shape, e.g. ``"integer class labels (B,)"``.
      ndim: the exact rank required, or None.
      min_ndim: the least rank accepted.

    Raises:
      TypeError: ``value`` is a list or tuple, not an array or number, or has another dtype kind.
      ValueError: ``value`` has the wrong rank.
    """
    if isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be {what}, got a Python {type(value).__name__}; pass jnp.asarray({name}).")
    if isinstance(value, (numbers.Number, np.generic)) and not isinstance(value, bool):
        value = jnp.asarray(value)
    if not isinstance(value, (jax.Array, np.ndarray)) and not is_traced(value):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r:.60}.")
    if not _dtype_ok(value.dtype, kind):
        raise TypeError(f"{name} must be {what}: {_KIND_WORDS[kind]} array, got {describe(value)}.")
    if (ndim is not None and value.ndim != ndim) or value.ndim < min_ndim:
        rank = f"rank {ndim}" if ndim is not None else f"rank at least {min_ndim}"
        raise ValueError(f"{name} must be {what} ({rank}), got {describe(value)}.")
    return value


def check_labels_in_range(name: str, labels: Any, classes: int) -> None:
    """Raises ``ValueError`` if concrete ``labels`` hold a value outside ``[0, classes)``; traced
    labels (under ``jit``/``vmap``) cannot be read and are used as given."""
    if is_traced(labels) or labels.size == 0:
        return
    host = np.asarray(labels)
    low, high = host.min(), host.max()
    if low < 0 or high >= classes:
        raise ValueError(f"{name} must hold class labels in [0, {classes}) ({classes} classes), got labels in "
                         f"[{low}, {high}]; a label outside counts as a wrong prediction with probability 0.")


def member_keys_arg(name: str, keys: Any) -> KeyArg:
    """``keys`` checked as one key per member, shape ``(K,)`` (raw: ``uint32[K, 2]``), or raises.

    Only the shape and dtype are read (free under ``jit`` and ``vmap``); the message shows them,
    never a tracer.

    Raises:
      TypeError: ``keys`` is not keys (typed keys or raw ``uint32[..., 2]`` key data).
      ValueError: ``keys`` is a single key or a grid of keys rather than ``(K,)`` keys.
    """
    arg = check_key(name, keys, batched=True)
    if len(arg.shape) != 1:
        kind = "a single key" if arg.shape == () else f"keys of shape {arg.shape}"
        raise ValueError(f"{name} must be one key per member, shape (K,) (raw: uint32[K, 2]), got {kind}; "
                         f"pass the ensemble's keys (ens.keys) or kf.fan_out(key, K).")
    return arg
