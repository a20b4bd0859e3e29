"""Warn-mode replay: what a jit trace found, reported again by every call that reuses the trace.

Under ``kf.sanitize(action="warn")`` a function's trace that finds a shared draw warns and runs
on, and JAX caches the trace (the mode token is the same in every block, so a function is traced
once whatever the number of blocks). A later block that calls it would trace nothing and warn
about nothing. So the findings of each trace are kept with the traced jaxpr JAX caches
(:func:`record`, called by the sanitizer's sink for every enclosing jit being traced), and

* every call that reuses that jaxpr (``_infer_params`` returns it without tracing) reports them
  again to the current sink, which warns once per draw and block (each test under
  ``pytest --keyfan-sanitize-warn``), and records them with any jit being traced around it;
* such a jaxpr never gets JAX's C++ fast path under the check (``_get_fastpath_data`` answers
  None), so every call of it passes through ``_infer_params``. That path re-traces and
  recompiles nothing (JAX keeps the trace, the lowering and the executable), and it applies only
  to functions that made a shared draw, only inside a warn-mode check: the mode is part of JAX's
  cache key, so the same function outside the check keeps its fast path.

The error mode needs none of this (a trace that raises is never cached), nor does the audit
(each audit traces everything under its own token). See :mod:`keyfan._jaxinternals.jit`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from keyfan._jaxinternals import jit
from keyfan._keyflow.findings import Finding

__all__ = ["available", "install", "record", "uninstall"]


class _Local(threading.local):
    def __init__(self) -> None:
        self.frames: list[list[Finding]] = []
        """The findings of each jit being traced, outermost first."""


_local = _Local()
_RECORDED: weakref.WeakKeyDictionary[Any, tuple[Finding, ...]] = weakref.WeakKeyDictionary()
"""The shared draws each cached jaxpr's trace found (with those of the cached jits it calls)."""
_BY_CONSTS: dict[int, weakref.ref[Any]] = {}
"""Those jaxprs by the ``id`` of their ``consts`` list, which ``_get_fastpath_data`` receives."""
_lock = threading.Lock()


def _no_sink() -> Any:
    return None


_sink: Callable[[], Any] = _no_sink


def available() -> bool:
    """True if the installed JAX has the two functions replay interposes on."""
    return jit.missing() is None


def record(findings: Sequence[Finding]) -> None:
    """Keeps ``findings`` with every jit whose trace is under way in this thread."""
    for frame in _local.frames:
        frame.extend(findings)


def _replaying() -> Any:
    sink = _sink()
    return sink if sink is not None and sink.action == "warn" else None


def _infer_params(fun: Any, jit_info: Any, args: Any, kwargs: Any) -> Any:
    __tracebackhide__ = True
    assert jit.infer_params is not None
    sink = _replaying()
    if sink is None:
        return jit.infer_params(fun, jit_info, args, kwargs)
    frame: list[Finding] = []
    _local.frames.append(frame)
    try:
        params, args_flat = jit.infer_params(fun, jit_info, args, kwargs)
    finally:
        _local.frames.pop()
    jaxpr = jit.traced_jaxpr(params)
    try:
        known = _RECORDED.get(jaxpr, ())
    except TypeError:  # not weakly referenceable: nothing kept, nothing replayed
        return params, args_flat
    if frame:  # traced now: keep what the trace found with the jaxpr JAX keeps
        key = id(jaxpr.consts)
        with _lock:
            _RECORDED[jaxpr] = tuple(dict.fromkeys((*known, *frame)))
            _BY_CONSTS[key] = weakref.ref(jaxpr, lambda _: _BY_CONSTS.pop(key, None))
    elif known:  # the cached trace: report what it found, here
        sink.report_all(known)
    return params, args_flat


def _get_fastpath_data(*args: Any, **kwargs: Any) -> Any:
    assert jit.get_fastpath_data is not None
    if _RECORDED and _replaying() is not None:
        consts = jit.fastpath_consts(args, kwargs)
        ref = _BY_CONSTS.get(id(consts))
        jaxpr = ref() if ref is not None else None
        if jaxpr is not None and jaxpr.consts is consts and jaxpr in _RECORDED:
            return None  # stay on the Python path, where the next call replays
    return jit.get_fastpath_data(*args, **kwargs)


def install(current_sink: Callable[[], Any]) -> None:
    """Starts replaying to the sink ``current_sink()`` returns (when it warns)."""
    global _sink
    if available():
        _sink = current_sink
        jit.patch(_infer_params, _get_fastpath_data)


def uninstall() -> None:
    """Stops replaying; what was recorded stays with its jaxprs for the next check."""
    if available():
        jit.restore()
