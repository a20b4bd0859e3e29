"""Argument checks shared by every keyfan entry point: convert once, at the boundary, or raise.

Every check names the argument, shows the value it received, states the rule, and where there
is an obvious fix, says it. Nothing is truncated or cast silently: ``2.0`` is accepted as ``2``,
``2.5`` is a ``ValueError``, ``True`` is a ``TypeError``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from keyfan._jaxinternals.core import is_tracer

__all__ = ["as_bool", "as_float", "as_int", "as_shape", "as_size", "check_fits_memory", "check_not_a_key",
           "check_traced", "check_writable_dir", "is_traced", "is_typed_key", "x64_enabled"]


def is_traced(value: Any) -> bool:
    """True for an abstract value inside ``jit``, ``vmap`` or ``grad`` (no concrete number)."""
    return is_tracer(value)


def is_typed_key(value: Any) -> bool:
    """True for a typed key array (``kf.key``, ``jax.random.key``) or its abstract value: the one
    key-kind test of keyfan (raw ``uint32[..., 2]`` key data is not a typed key)."""
    dtype = getattr(value, "dtype", None)
    return dtype is not None and bool(jnp.issubdtype(dtype, jax.dtypes.prng_key))


def x64_enabled() -> bool:
    """Whether ``jax_enable_x64`` is on (64-bit dtypes available): the one read of that flag."""
    return bool(jax.config.read("jax_enable_x64"))  # type: ignore[no-untyped-call]


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def as_int(name: str, value: Any, *, lo: int | None = None, hi: int | None = None) -> int:
    """Returns ``value`` as a Python int, or raises.

    Accepts Python ints, NumPy integer and floating scalars, 0-d NumPy and JAX arrays, and
    floats that are whole numbers (``3.0``). Rejects booleans, non-whole or non-finite floats,
    traced values and anything non-numeric.

    Args:
      name: the argument's name, used in error messages.
      value: the value received.
      lo: inclusive lower bound, or None.
      hi: exclusive upper bound, or None.

    Raises:
      TypeError: ``value`` is not a number, is a bool, is an array with dimensions, or is traced.
      ValueError: ``value`` is not whole, not finite, or outside ``[lo, hi)``.
    """
    if is_traced(value):
        raise TypeError(
            f"{name} must be a concrete number, got a traced value {value!r}; "
            f"mark {name} as static (jax.jit(..., static_argnames=...)) or pass a Python int."
        )
    if isinstance(value, (np.ndarray, jax.Array)):
        if value.ndim != 0:
            raise TypeError(f"{name} must be a scalar, got an array of shape {value.shape}.")
        value = value.item() if isinstance(value, np.ndarray) else np.asarray(value).item()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got bool {value!r}.")
    if isinstance(value, numbers.Integral):
        result = int(value)
    elif isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite whole number, got {value!r}.")
        if not value.is_integer():
            raise ValueError(
                f"{name} must be a whole number, got {value!r}; "
                f"round it yourself (e.g. {name}={round(value)}) if that is what you mean."
            )
        result = int(value)
    else:
        raise TypeError(f"{name} must be an integer, got {_describe(value)}.")
    if lo is not None and result < lo:
        raise ValueError(f"{name} must be at least {lo}, got {result}.")
    if hi is not None and result >= hi:
        raise ValueError(f"{name} must be less than {hi}, got {result}.")
    return result


def as_bool(name: str, value: Any) -> bool:
    """Returns ``value`` as a Python bool, or raises.

    Accepts ``True``/``False`` and NumPy booleans only: a string (``"no"`` is truthy), a number
    or None is refused rather than read by its truthiness.

    Raises:
      TypeError: ``value`` is not a bool.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}; pass {name}=True or {name}=False.")
    return bool(value)


def as_size(name: str, value: Any, *, hi: int | None = None) -> int:
    """Returns ``value`` as a non-negative Python int (a size), or raises like :func:`as_int`."""
    return as_int(name, value, lo=0, hi=hi)


def as_shape(name: str, value: Any, *, hi: int | None = None) -> tuple[int, ...]:
    """Returns a shape: an int or a sequence of non-negative ints, each checked by ``as_size``."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be a shape (an int or a tuple of ints), got {_describe(value)}.")
    if isinstance(value, Sequence):
        return tuple(as_size(f"{name}[{i}]", v, hi=hi) for i, v in enumerate(value))
    if isinstance(value, (np.ndarray, jax.Array)) and getattr(value, "ndim", 0) == 1:
        return tuple(as_size(f"{name}[{i}]", v, hi=hi) for i, v in enumerate(np.asarray(value)))
    return (as_size(name, value, hi=hi),)


def as_float(name: str, value: Any, *, lo: float | None = None, hi: float | None = None,
             hi_inclusive: bool = True) -> float:
    """Returns ``value`` as a finite Python float in ``[lo, hi]`` (or ``[lo, hi)``), or raises."""
    if is_traced(value):
        raise TypeError(f"{name} must be a concrete number, got a traced value {value!r}.")
    if isinstance(value, (np.ndarray, jax.Array)):
        if value.ndim != 0:
            raise TypeError(f"{name} must be a scalar, got an array of shape {value.shape}.")
        value = np.asarray(value).item()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    if lo is not None and value < lo:
        raise ValueError(f"{name} must be at least {lo}, got {value!r}.")
    if hi is not None and (value > hi or (value == hi and not hi_inclusive)):
        bound = f"at most {hi}" if hi_inclusive else f"less than {hi}"
        raise ValueError(f"{name} must be {bound}, got {value!r}.")
    return float(value)


def check_traced(pred: Any, message: str, **values: Any) -> None:
    """A check of traced values that cannot be made at trace time, run under ``checkify``.

    Inside ``jax.jit`` (or any transformation) an index or id is abstract, so keyfan cannot raise
    on it. The rule is recorded with ``jax.experimental.checkify.debug_check``: a no-op in a plain
    ``jit`` program (the value is used as given, e.g. a negative int32 index wraps to its uint32
    pattern), an error in a function wrapped with ``checkify.checkify``::

        err, out = checkify.checkify(jax.jit(lambda j: kf.at(key, j)))(-1)
        err.throw()  # ValueError-like JaxRuntimeError: index must be non-negative, got -1

    ``message`` may format ``values`` with ``{name}``.
    """
    from jax.experimental import checkify

    checkify.debug_check(pred, message, **values)


def check_not_a_key(name: str, value: Any) -> None:
    """Raises ``TypeError`` if ``value`` is a key (typed, or ``uint32[2]`` key data) passed where an
    integer seed belongs."""
    dtype = getattr(value, "dtype", None)
    if is_typed_key(value):
        raise TypeError(f"{name} must be an integer seed, got a key ({dtype}); a key needs no seeding: use it "
                        f"directly, or derive a new one with kf.named(key, 'name') or kf.at(key, i).")
    if dtype is not None and np.dtype(dtype) == np.uint32 and tuple(getattr(value, "shape", ())) == (2,):
        raise TypeError(f"{name} must be an integer seed, got uint32[2] key data (a jax.random.PRNGKey); use "
                        f"it as a key directly (every keyfan function takes it), or pass an integer seed.")


def _memory_bytes() -> int | None:
    try:
        import os

        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def check_fits_memory(name: str, shape: tuple[int, ...], itemsize: int, remedy: str) -> None:
    """Raises ``ValueError`` before any work when an array of ``shape`` cannot fit in the host's
    memory (XLA would fail with an out-of-memory error only after compiling)."""
    nbytes = math.prod(shape) * itemsize
    limit = _memory_bytes()
    if limit is not None and nbytes > limit:
        raise ValueError(f"{name} {shape} would need {nbytes / 2**30:.1f} GiB, more than this machine's "
                         f"{limit / 2**30:.1f} GiB of memory; {remedy}")


def check_writable_dir(name: str, path: Any) -> None:
    """Creates ``path`` if needed and checks that a file can be written in it, or raises: before
    any work is done (a run that trains first and fails on writing its results wastes the run),
    and before a library starts threads that a failure would leave running.

    Raises:
      NotADirectoryError: ``path`` or one of its ancestors is a file.
      PermissionError: ``path`` cannot be created or written (read-only file system, no
        permission).
    """
    import pathlib
    import tempfile

    path = pathlib.Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{name} {str(path)!r} exists and is not a directory; pass a directory "
                                 f"(it is created if needed).")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{name} {str(path)!r} cannot be created: {str(existing)!r} is a file.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise PermissionError(f"{name} {str(path)!r} is not writable ({err.strerror or err}); pass a directory "
                              f"you can write to.") from err
