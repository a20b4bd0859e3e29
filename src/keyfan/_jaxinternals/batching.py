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

from keyfan._jaxinternals import JAX_VERSION, Missing, UnsupportedJaxError, lookup

__all__ = ["CALL_METHODS", "BatchTrace", "arg_names", "axis_data", "axis_name", "axis_size", "batch_dim",
           "batch_dims_outward", "init", "is_retrace", "is_vmap_entry", "missing", "patch", "process_primitive",
           "restore", "tag", "transformation"]

_BATCHING = "jax._src.interpreters.batching"
_batching: Any = lookup("jax._src.interpreters.batching", ("jax._src.interpreters", "batching", (0, 5), None))
_core: Any = lookup("jax._src.core", ("jax._src", "core", (0, 5), None))
BatchTrace: Any = lookup("BatchTrace", (_BATCHING, "BatchTrace", (0, 5), None))
_transformation2: Any = lookup("linear_util.transformation2", ("jax._src.linear_util", "transformation2", (0, 5), None))
_SUM_MATCH = JAX_VERSION >= (0, 9, 0)
"""``batching.batch`` and ``batching.from_elt`` take a ``sum_match`` argument from JAX 0.9 (before:
none, i.e. always False)."""
_VMAP_ENTRY = "_batch_inner"
"""The function of ``jax._src.interpreters.batching`` in which a user's vmap creates its trace."""
_INIT_PARAMETERS = ["self", "parent_trace", "tag", "axis_data"]

process_primitive: Callable[..., Any] = BatchTrace if isinstance(BatchTrace, Missing) else BatchTrace.process_primitive
"""JAX's ``BatchTrace.process_primitive(trace, primitive, tracers, params)``."""
init: Callable[..., Any] = BatchTrace if isinstance(BatchTrace, Missing) else BatchTrace.__init__
"""JAX's ``BatchTrace.__init__(trace, parent_trace, tag, axis_data)``."""


def _parameters(function: Any) -> list[str]:
    try:
        return list(inspect.signature(function).parameters)
    except (TypeError, ValueError, UnsupportedJaxError):
        return []


def missing() -> str | None:
    """What of the above this JAX lacks, or None."""
    if isinstance(BatchTrace, Missing) or isinstance(_batching, Missing):
        return "jax._src.interpreters.batching.BatchTrace"
    parameters = _parameters(init)
    sum_match = ["sum_match"] if _SUM_MATCH else []
    checks = {
        "BatchTrace.__init__(parent_trace, tag, axis_data)": parameters == _INIT_PARAMETERS,
        "BatchTrace.process_primitive": callable(getattr(BatchTrace, "process_primitive", None)),
        "BatchTrace.to_batch_info": callable(getattr(BatchTrace, "to_batch_info", None)),
        f"batching.{_VMAP_ENTRY}": callable(getattr(_batching, _VMAP_ENTRY, None)),
        "core.trace_ctx.trace": not isinstance(_core, Missing) and hasattr(getattr(_core, "trace_ctx", None), "trace"),
        "linear_util.transformation2": not isinstance(_transformation2, Missing),
        f"batching.batch(fun, axis_data, in_dims, out_dim_dests{', sum_match' if _SUM_MATCH else ''})":
            _parameters(getattr(_batching, "batch", None))[:5] == ["fun", "axis_data", "in_dims", "out_dim_dests",
                                                                   *sum_match],
        f"batching.from_elt(trace, axis_size, mesh_axis, {'sum_match, ' if _SUM_MATCH else ''}i, x, spec)":
            _parameters(getattr(_batching, "from_elt", None)) == ["trace", "axis_size", "mesh_axis", *sum_match,
                                                                "i", "x", "spec"],
    }
    absent = [name for name, ok in checks.items() if not ok]
    return ", ".join(absent) if absent else None


CALL_METHODS: dict[str, Callable[..., Any]] = {} if isinstance(BatchTrace, Missing) else {
    name: getattr(BatchTrace, name)
    for name in ("process_call", "process_custom_jvp_call", "process_custom_vjp_call", "process_shard_map")
    if callable(getattr(BatchTrace, name, None))}
"""JAX's ``BatchTrace`` methods that trace a Python function of the user's under the same vmap
(``custom_jvp``, ``custom_vjp``, ``shard_map``, call primitives): ``(trace, primitive, *rest)``,
the tracers in the first list (or JAX 0.10's ``FlatTree``, with ``.vals``) among ``rest``. The
same four names from 0.5 to 0.10 (``process_shard_map`` from 0.6)."""
_batch: Callable[..., Any] = lookup("batching.batch", (_BATCHING, "batch", (0, 5), None))
"""JAX's ``batching.batch``: the ``WrappedFun`` of one user vmap (``api.vmap`` looks it up as
``batching.batch`` at every call; 0.5 to 0.10). ``(fun, axis_data, in_dims, out_dim_dests,
sum_match=False)`` from 0.9, without ``sum_match`` from 0.5 to 0.8: :func:`batch` and
:func:`patch` take and give the 0.9 form on every version."""
_from_elt: Callable[..., Any] = lookup("batching.from_elt", (_BATCHING, "from_elt", (0, 5), None))
"""JAX's ``batching.from_elt``: one output of a user vmap leaving it (``_batch_inner`` looks it
up as a global; ``spec`` is its ``out_axes`` entry, None for an unmapped output).
``(trace, axis_size, mesh_axis, sum_match, i, x, spec)`` from 0.9, without ``sum_match`` from
0.5 to 0.8: :func:`from_elt` and :func:`patch` take and give the 0.9 form on every version."""
_RETRACE_ENTRIES = ("_batch_jaxpr_inner", "_batch_jaxpr2", "_batch_jaxpr_axes")
"""Functions of ``batching`` in which a batching rule creates the trace of a sub-jaxpr it re-batches."""


def patch(new_process_primitive: Callable[..., Any], new_init: Callable[..., Any], *,
          calls: dict[str, Callable[..., Any]] | None = None, batch: Callable[..., Any] | None = None,
          from_elt: Callable[..., Any] | None = None) -> None:
    """Routes every ``BatchTrace`` through ``new_process_primitive`` and ``new_init`` (same
    signatures as JAX's; they call :func:`process_primitive` and :func:`init`), and optionally
    the :data:`CALL_METHODS` (by name), ``batching.batch`` and ``batching.from_elt`` (given in
    JAX 0.9's form, with ``sum_match``, on every version: they call :func:`batch` and
    :func:`from_elt`)."""
    BatchTrace.process_primitive = new_process_primitive
    BatchTrace.__init__ = new_init
    for name, method in (calls or {}).items():
        setattr(BatchTrace, name, method)
    if batch is not None:
        _batching.batch = batch if _SUM_MATCH else _without_sum_match_batch(batch)
    if from_elt is not None:
        _batching.from_elt = from_elt if _SUM_MATCH else _without_sum_match_from_elt(from_elt)


def _without_sum_match_batch(new_batch: Callable[..., Any]) -> Callable[..., Any]:
    def batch_0_5(fun: Any, axis_data: Any, in_dims: Any, out_dim_dests: Any) -> Any:
        return new_batch(fun, axis_data, in_dims, out_dim_dests, False)
    return batch_0_5


def _without_sum_match_from_elt(new_from_elt: Callable[..., Any]) -> Callable[..., Any]:
    def from_elt_0_5(trace: Any, axis_size: Any, mesh_axis: Any, i: int, x: Any, spec: Any) -> Any:
        return new_from_elt(trace, axis_size, mesh_axis, False, i, x, spec)
    return from_elt_0_5


def restore() -> None:
    """Puts JAX's own methods and functions back."""
    BatchTrace.process_primitive = process_primitive
    BatchTrace.__init__ = init
    for name, method in CALL_METHODS.items():
        setattr(BatchTrace, name, method)
    _batching.batch = _batch
    _batching.from_elt = _from_elt


def batch(fun: Any, axis_data: Any, in_dims: Any, out_dim_dests: Any, sum_match: bool = False) -> Any:
    """JAX's own ``batching.batch`` (``sum_match`` is always False before JAX 0.9)."""
    if _SUM_MATCH:
        return _batch(fun, axis_data, in_dims, out_dim_dests, sum_match)
    return _batch(fun, axis_data, in_dims, out_dim_dests)


def from_elt(trace: Any, axis_size: Any, mesh_axis: Any, sum_match: bool, i: int, x: Any, spec: Any) -> Any:
    """JAX's own ``batching.from_elt`` (``sum_match`` is always False before JAX 0.9)."""
    if _SUM_MATCH:
        return _from_elt(trace, axis_size, mesh_axis, sum_match, i, x, spec)
    return _from_elt(trace, axis_size, mesh_axis, i, x, spec)


def arg_names(fun: Any, count: int) -> list[str]:
    """The user's names of a vmapped function's ``count`` flat arguments (``"key"``,
    ``"batch['rng']"``), from the ``WrappedFun``'s ``debug_info.arg_names`` (best effort in JAX:
    ``""`` where unknown; from 0.5 to 0.10)."""
    names = getattr(getattr(fun, "debug_info", None), "arg_names", None)
    if not isinstance(names, tuple) or len(names) != count:
        return [""] * count
    return [n if isinstance(n, str) else "" for n in names]


def transformation(gen: Callable[..., Any]) -> Callable[..., Any]:
    """``linear_util.transformation2``: ``transformation(gen)(wrapped_fun, *static)`` is a
    ``WrappedFun`` whose call runs ``gen(call, *static, *args)`` (0.5 to 0.10)."""
    return _transformation2(gen)


def is_retrace(frame: FrameType | None) -> bool:
    """True if ``frame`` (the caller of ``BatchTrace.__init__``) is a batching rule re-batching a
    sub-jaxpr (``cond``'s branches, a ``while`` body): checked where the rule was called."""
    return frame is not None and frame.f_code.co_name in _RETRACE_ENTRIES


def tag(trace: Any) -> Any:
    """The tag shared by every trace of one vmap (its ``custom_jvp``/``shard_map`` sub-traces too)."""
    return trace.tag


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
