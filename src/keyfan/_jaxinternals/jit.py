"""JAX's jit dispatch, as ``kf.sanitize(action="warn")`` replays what a cached trace found.

A ``jax.jit`` function is traced once per signature and trace context; later calls hit the C++
dispatch cache and run no Python at all. Two module globals of ``jax._src.pjit``, looked up at
call time, are the Python path of a call (the same from 0.7 to 0.10):

* ``_infer_params(fun, jit_info, args, kwargs)`` runs on every call that misses the C++ cache
  (and on every call with tracers, inside another trace); it returns ``(params, args_flat)``
  with the traced ``ClosedJaxpr`` in ``params.params["jaxpr"]``: the SAME object for every call
  that reuses one trace (JAX keeps it in ``_infer_params_cached``). 0.7 reaches it through
  ``_python_pjit_helper``, 0.8 to 0.10 from ``cache_miss``.
* ``_get_fastpath_data(executable, out_tree, args_flat, out_flat, effects, consts, ...)`` (its
  sixth argument is the jaxpr's ``consts`` list, passed as ``jaxpr.consts`` of the jaxpr above)
  tells the C++ cache whether the next call may skip Python; None keeps that cache entry on the
  Python path. That path re-traces nothing and compiles nothing: the lowering
  (``_pjit_lower``, a weakref LRU cache) and its executable (``MeshComputation.compile``) stay
  cached.

:func:`patch` routes both through keyfan's functions (same signatures; they call
:data:`infer_params` and :data:`get_fastpath_data`, JAX's own); :func:`restore` puts JAX's back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jax._src import pjit as _pjit

__all__ = ["fastpath_consts", "get_fastpath_data", "infer_params", "missing", "patch", "restore", "traced_jaxpr"]

infer_params: Callable[..., Any] | None = getattr(_pjit, "_infer_params", None)
"""JAX's ``pjit._infer_params(fun, jit_info, args, kwargs) -> (params, args_flat)``."""
get_fastpath_data: Callable[..., Any] | None = getattr(_pjit, "_get_fastpath_data", None)
"""JAX's ``pjit._get_fastpath_data(executable, out_tree, args_flat, out_flat, effects, consts, ...)``."""
_CONSTS_POSITION = 5


def missing() -> str | None:
    """What of the above this JAX lacks, or None (then warn-mode replay is off; nothing else is)."""
    absent = [name for name, found in (("pjit._infer_params", infer_params),
                                       ("pjit._get_fastpath_data", get_fastpath_data)) if not callable(found)]
    return ", ".join(absent) if absent else None


def patch(new_infer_params: Callable[..., Any], new_get_fastpath_data: Callable[..., Any]) -> None:
    """Routes every Python-path jit call through the two functions (see the module docstring)."""
    _pjit._infer_params = new_infer_params
    _pjit._get_fastpath_data = new_get_fastpath_data


def restore() -> None:
    """Puts JAX's own functions back."""
    _pjit._infer_params = infer_params
    _pjit._get_fastpath_data = get_fastpath_data


def traced_jaxpr(params: Any) -> Any:
    """The ``ClosedJaxpr`` of a trace, from ``_infer_params``'s first result."""
    return params.params["jaxpr"]


def fastpath_consts(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The ``consts`` list ``_get_fastpath_data`` was called with (the jaxpr's ``consts``)."""
    return args[_CONSTS_POSITION] if len(args) > _CONSTS_POSITION else kwargs.get("consts_for_constvars")
