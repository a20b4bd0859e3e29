"""JAX's batching machinery, as ``kf.sanitize()`` interposes on it.

Every vmap traces its function under a ``jax._src.interpreters.batching.BatchTrace``, and every
primitive bound inside it passes through ``BatchTrace.process_primitive(trace, primitive,
tracers, params)``. The same on every JAX from 0.5 to 0.10:

* ``BatchTrace.__init__(parent_trace, tag, axis_data)``; the user's vmap (``jax.vmap`` and
  everything built on it) creates its trace in ``batching._batch_inner``, while batching rules
  re-batching a sub-jaxpr create theirs elsewhere (``batch_jaxpr``, ...);
* ``trace.to_batch_info(value)`` gives ``(value, batch dim)``, the dim ``None`` when the value
  is not mapped over this trace; ``trace.axis_data.name`` / ``.size``; ``trace.parent_trace``;
* the current trace is ``jax._src.core.trace_ctx.trace``; a tracer's trace is ``_trace``, and a
  JVP tracer's value is ``primal``.

:func:`patch` replaces ``process_primitive`` and ``__init__`` (:func:`restore` puts JAX's back);
the replacements call :func:`process_primitive` and :func:`init`, JAX's own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from jax._src import core as _core
from jax._src.interpreters import batching as _batching

__all__ = ["BatchTrace", "axis_data", "axis_name", "axis_size", "batch_dim", "batch_dims_outward", "init",
           "is_vmap_entry", "missing", "patch", "process_primitive", "restore"]

BatchTrace = _batching.BatchTrace
_VMAP_ENTRY = "_batch_inner"
"""The function of ``jax._src.interpreters.batching`` in which a user's vmap creates its trace."""
_INIT_PARAMETERS = ["self", "parent_trace", "tag", "axis_data"]

process_primitive: Callable[..., Any] = BatchTrace.process_primitive
"""JAX's ``BatchTrace.process_primitive(trace, primitive, tracers, params)``."""
init: Callable[..., Any] = BatchTrace.__init__
"""JAX's ``BatchTrace.__init__(trace, parent_trace, tag, axis_data)``."""


def missing() -> str | None:
    """What of the above this JAX lacks, or None."""
    try:
        parameters = list(inspect.signature(init).parameters)
    except (TypeError, ValueError):
        parameters = []
    checks = {
        "BatchTrace.__init__(parent_trace, tag, axis_data)": parameters == _INIT_PARAMETERS,
        "BatchTrace.process_primitive": callable(getattr(BatchTrace, "process_primitive", None)),
        "BatchTrace.to_batch_info": callable(getattr(BatchTrace, "to_batch_info", None)),
        f"batching.{_VMAP_ENTRY}": callable(getattr(_batching, _VMAP_ENTRY, None)),
        "core.trace_ctx.trace": hasattr(getattr(_core, "trace_ctx", None), "trace"),
    }
    absent = [name for name, ok in checks.items() if not ok]
    return ", ".join(absent) if absent else None


def patch(new_process_primitive: Callable[..., Any], new_init: Callable[..., Any]) -> None:
    """Routes every ``BatchTrace`` through ``new_process_primitive`` and ``new_init`` (same
    signatures as JAX's; they call :func:`process_primitive` and :func:`init`)."""
    BatchTrace.process_primitive = new_process_primitive
    BatchTrace.__init__ = new_init


def restore() -> None:
    """Puts JAX's own ``process_primitive`` and ``__init__`` back."""
    BatchTrace.process_primitive = process_primitive
    BatchTrace.__init__ = init


def is_vmap_entry(frame: FrameType | None) -> bool:
    """True if ``frame`` (the caller of ``BatchTrace.__init__``) is a user's vmap starting, not a
    batching rule re-batching a sub-jaxpr for one."""
    return frame is not None and frame.f_code.co_name == _VMAP_ENTRY


def batch_dim(trace: Any, value: Any) -> int | None:
    """The axis of ``value`` mapped over ``trace``'s vmap, or None if it is the same for every example."""
    return trace.to_batch_info(value)[1]


def axis_data(trace: Any) -> Any:
    """The (hashable) axis description of ``trace``'s vmap: one object per traced vmap."""
    return trace.axis_data


def axis_name(trace: Any) -> Any:
    """The ``axis_name`` of ``trace``'s vmap (an internal name when the user gave none)."""
    return trace.axis_data.name


def axis_size(trace: Any) -> Any:
    """The batch size of ``trace``'s vmap (an int, or a symbolic size)."""
    return trace.axis_data.size


def batch_dims_outward(value: Any) -> Iterator[tuple[Any, int | None]]:
    """``(trace, batch dim of value)`` for every vmap around the current trace, innermost first,
    up to the nearest ``jit`` boundary (through JVP traces, whose tracers are unwrapped)."""
    trace = _core.trace_ctx.trace
    while trace is not None:
        if isinstance(trace, BatchTrace):
            value, dim = trace.to_batch_info(value)
            yield trace, dim
        elif isinstance(value, _core.Tracer) and value._trace is trace:
            value = getattr(value, "primal", value)
        trace = getattr(trace, "parent_trace", None)
