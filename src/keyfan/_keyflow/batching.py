"""The check at JAX's batching machinery: a draw whose key is not mapped over the vmap it sits in.

Every vmap (``jax.vmap`` and everything built on it: ``kf.vmap``, ``nnx.vmap``, linen
``nn.vmap`` and its lifted transforms, ``eqx.filter_vmap``) traces its function under a
``BatchTrace``, and every primitive bound inside it, or inside a ``jit``, ``scan``, ``cond``,
``while_loop``, ``checkpoint`` or custom derivative nested in it, passes through
``BatchTrace.process_primitive`` with the batch dimension of each operand. While a check is
:func:`active`, keyfan interposes there (and nowhere else), and finds:

* a ``random_bits``/``random_gamma`` whose key operand is not batched over this vmap, or a
  ``threefry2x32`` with no batched operand: every example of the vmap draws the same values;
* a call (``jit``, ``scan``, ...) bound with no batched operand at all, so JAX runs it once for
  the whole batch: every random draw inside it (found by the key-flow engine) is shared, unless
  its key derives from this vmap's ``axis_index``;
* keyfan's own samplers report their key at their entry point (:func:`check_key`).

Draws traced inside ``kf.shared_randomness()`` (and so under ``kf.vmap(..., randomness="same")``)
are declared sharing and pass; so does parameter initialisation in a linen module
(``Scope.param``), where sharing over a vmap is how ``nn.vmap`` shares parameters
(``variable_axes={"params": None}``). The check runs at trace time only: it reads operands and
never changes what is bound, so the compiled program is the same with it and without it. Its
mode is part of JAX's trace context, so functions traced before the check are traced again
under it (and cached separately), rather than skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import sys
import threading
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import jax

from keyfan import _kernel
from keyfan._jaxinternals import batching, core, require_sanitizer
from keyfan._jaxinternals import source_info as source_info_util
from keyfan._jaxinternals.config import trace_context_state
from keyfan._keyflow.errors import SharedRandomnessError, SharedRandomnessWarning
from keyfan._keyflow.flow import analyze, sub_jaxpr
from keyfan._keyflow.hashes import HASH_SCOPE
from keyfan._keyflow.source import in_scope, traceback_api, traceback_location, user_frame
from keyfan._keyflow.wording import SHARED_DRAW_FIX, WRAPPER_FIXES, what
from keyfan.scopes import SHARED_RANDOMNESS_SCOPE

__all__ = ["SharedDraw", "Sink", "active", "check_key", "checking"]

_DRAWS = {"random_bits": (0,), "random_gamma": (0,), "threefry2x32": None}
"""Draw primitives and the operands that key them (None: all operands)."""

_MODE = trace_context_state(
    "keyfan_sanitize_mode", "off",
    help="keyfan's shared-draw check (set by kf.sanitize and kf.audit; part of the trace context).")
"""``"off"`` or a fresh token per check: traces made under a check are cached under its token."""

_TOKENS = itertools.count()


@dataclasses.dataclass(frozen=True)
class SharedDraw:
    """One draw that is the same for every example of a vmap."""

    what: str
    """How to call the draw: ``jax.random.normal``, ``a random draw``, ``kf.normal``..."""
    location: str
    """The user's source line of the draw (``file:line (function)``), or ``""``."""
    vmap: str
    """The user's source line where the vmap was traced, or ``""``."""
    wrapper: str
    """``"jax"``, ``"linen"``, ``"nnx"``, ``"equinox"`` or ``"keyfan"``: whose vmap it is."""
    axis_size: int | None
    frame: tuple[str, int] | None = None
    """``(file, line)`` of the draw, for warnings."""

    @property
    def problem(self) -> str:
        """What is wrong, in one sentence (without the draw's own line, see :attr:`location`)."""
        vmap = {"jax": "jax.vmap", "linen": "linen nn.vmap", "nnx": "nnx.vmap", "equinox": "eqx.filter_vmap",
                "keyfan": "kf.vmap"}.get(self.wrapper, "vmap")
        vmap_at = f" traced at {self.vmap}" if self.vmap else ""
        size = f" (batch of {self.axis_size})" if self.axis_size is not None else ""
        return (f"{self.what} draws the same values for every example of the {vmap}{vmap_at}{size}: "
                f"its key is not mapped over that vmap (it was passed with in_axes=None, closed over, or "
                f"derived from such a key).")

    @property
    def fix(self) -> str:
        """How to fix it, in one sentence."""
        specific = WRAPPER_FIXES.get(self.wrapper)
        return f"{specific}; or {SHARED_DRAW_FIX}" if specific else SHARED_DRAW_FIX

    @property
    def message(self) -> str:
        """The whole report: the line, what is wrong, and the fix."""
        where = f"at {self.location}: " if self.location else ""
        return f"{where}{self.problem} Fix: {self.fix}"


@dataclasses.dataclass
class Sink:
    """What a check does with a shared draw: ``"error"`` raises, ``"warn"`` warns once per source
    line, ``"collect"`` keeps it in :attr:`found`."""

    action: str
    found: list[SharedDraw] = dataclasses.field(default_factory=list)

    def report(self, draw: SharedDraw) -> None:
        if self.action == "error":
            raise SharedRandomnessError(f"kf.sanitize: {draw.message}")
        # One draw can be seen on several paths (an inlined jit, its inner jit, the primitive),
        # the same line each time, or none where a cached re-trace hides it: keep one per line.
        same_vmap = [f for f in self.found if f.vmap == draw.vmap and f.axis_size == draw.axis_size]
        if any(f.location == draw.location for f in same_vmap) or (not draw.location and same_vmap):
            return
        for unknown in [f for f in same_vmap if not f.location]:
            self.found.remove(unknown)
        self.found.append(draw)
        if self.action == "warn":
            file, line = draw.frame or ("<unknown>", 0)
            warnings.warn_explicit(f"kf.sanitize: {draw.message}", SharedRandomnessWarning, file, line)


_local = threading.local()
_GLOBAL: list[Sink] = []
"""The sink of a program-wide check (``KEYFAN_SANITIZE``), if any."""


def _sinks() -> list[Sink]:
    stack = getattr(_local, "sinks", None)
    if stack is None:
        stack = _local.sinks = []
    return stack


def _sink() -> Sink | None:
    stack = _sinks()
    return stack[-1] if stack else (_GLOBAL[-1] if _GLOBAL else None)


def active() -> bool:
    """True while a check runs (in this thread, or program-wide)."""
    return _MODE.value != "off"


@contextlib.contextmanager
def checking(sink: Sink) -> Iterator[Sink]:
    """Checks every vmap traced inside the block, reporting to ``sink``."""
    _install()
    _sinks().append(sink)
    try:
        with _MODE(f"{sink.action}-{next(_TOKENS)}"):
            yield sink
    finally:
        _sinks().pop()
        _uninstall()


def check_globally(action: str) -> None:
    """Turns a check on for the whole program (all threads), as ``KEYFAN_SANITIZE`` does."""
    _install()
    _GLOBAL.append(Sink(action))
    jax.config.update("keyfan_sanitize_mode", f"{action}-global")


# -- where a vmap was traced -------------------------------------------------------------------

_VMAPS: dict[Any, tuple[str, str]] = {}
"""The user's line and wrapper of the vmap behind each ``AxisData`` (the last one traced)."""
_MAX_VMAPS = 4096

_WRAPPERS = (
    (os.path.join("flax", "nnx", ""), "nnx"),
    (os.path.join("flax", "linen", ""), "linen"),
    (os.path.join("flax", "core", ""), "linen"),
    (os.path.join("equinox", ""), "equinox"),
)


def _keyfan_vmap_file() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_vmap.py")


def _record_vmap(axis_data: Any) -> None:
    traceback = source_info_util.current().traceback
    wrapper = "jax"
    keyfan_vmap = _keyfan_vmap_file()
    for frame in getattr(traceback, "frames", ()):
        if frame.file_name == keyfan_vmap:
            wrapper = "keyfan"
            break
        found = next((kind for part, kind in _WRAPPERS if part in frame.file_name), None)
        if found is not None:
            wrapper = found
    if len(_VMAPS) >= _MAX_VMAPS:
        _VMAPS.clear()
    with contextlib.suppress(TypeError):  # an unhashable axis name
        _VMAPS[axis_data] = (traceback_location(traceback), wrapper)


def _vmap_of(trace: Any) -> tuple[str, str]:
    try:
        return _VMAPS.get(batching.axis_data(trace), ("", "jax"))
    except TypeError:
        return "", "jax"


# -- the interposition -------------------------------------------------------------------------

_ORIGINAL_PROCESS = batching.process_primitive
_ORIGINAL_INIT = batching.init
_lock = threading.Lock()
_installed = 0


def _install() -> None:
    global _installed
    require_sanitizer()
    with _lock:
        _installed += 1
        if _installed == 1:
            batching.patch(_process_primitive, _init)
            _kernel.set_draw_hook(check_key)


def _uninstall() -> None:
    global _installed
    with _lock:
        _installed -= 1
        if _installed == 0 and not _GLOBAL:
            batching.restore()
            _kernel.set_draw_hook(None)


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    _ORIGINAL_INIT(self, *args, **kwargs)
    # A vmap of the user's (not a batching rule re-batching a sub-jaxpr for it): remember where.
    if _MODE.value != "off" and batching.is_vmap_entry(sys._getframe(1)):
        _record_vmap(batching.axis_data(self))


def _process_primitive(self: Any, p: Any, tracers: Any, params: Any, /) -> Any:
    if _MODE.value == "off":
        return _ORIGINAL_PROCESS(self, p, tracers, params)
    sink = _sink()
    subs = _subs(params)
    if sink is not None:
        _check_primitive(self, sink, p, tracers, subs)
    if not subs:
        return _ORIGINAL_PROCESS(self, p, tracers, params)
    # Batching rules re-trace sub-jaxprs in a fresh context (their results are cached), so the
    # scopes and frames around this equation are kept here for the draws inside it.
    outer = _outer()
    info = source_info_util.current()
    outer.append((str(info.name_stack), info.traceback))
    try:
        return _ORIGINAL_PROCESS(self, p, tracers, params)
    finally:
        outer.pop()


def _subs(params: dict[str, Any]) -> list[tuple[core.Jaxpr, int]]:
    return [s for s in (sub_jaxpr(v) for value in params.values()
                        for v in (value if isinstance(value, (tuple, list)) else (value,))) if s is not None]


def _outer() -> list[tuple[str, Any]]:
    found = getattr(_local, "outer", None)
    if found is None:
        found = _local.outer = []
    return found


def _name_stack() -> str:
    """The full name stack here: the enclosing equations' scopes, then the current ones."""
    return "/".join([*(stack for stack, _ in _outer()), str(source_info_util.current_name_stack())])


def _check_primitive(trace: Any, sink: Sink, p: Any, tracers: Any, subs: list[tuple[core.Jaxpr, int]]) -> None:
    dims = [batching.batch_dim(trace, t) for t in tracers]
    if p.name in _DRAWS:
        keyed = _DRAWS[p.name]
        operands = range(len(dims)) if keyed is None else keyed
        if all(dims[i] is None for i in operands if i < len(dims)):
            info = source_info_util.current()
            _report(trace, sink, info.traceback, _name_stack(), what(p.name, traceback_api(info.traceback)))
    elif subs and all(d is None for d in dims):
        for jaxpr, _ in subs:
            if _has_draws(jaxpr):
                _check_unmapped_call(trace, sink, jaxpr)


def check_key(key: Any) -> None:
    """Reports a keyfan draw from ``key`` if ``key`` is not mapped over a vmap the call sits in.
    Called by keyfan's samplers at their entry point (their hashes are plain arithmetic, which
    the primitive check cannot tell from other arithmetic); free when no check is active."""
    if _MODE.value == "off":
        return
    sink = _sink()
    if sink is None:
        return
    for trace, dim in batching.batch_dims_outward(key):
        if dim is None:
            info = source_info_util.current()
            api = traceback_api(info.traceback) or "a keyfan draw"
            _report(trace, sink, info.traceback, _name_stack(), api)
            return


_PARAM_INIT = (os.path.join("flax", "core", "scope.py"), "param")


def _in_param_init(traceback: Any) -> bool:
    """True inside linen's ``Scope.param``: parameter initialisation, shared by design when the
    parameters are (``nn.vmap(..., variable_axes={"params": None})``)."""
    return any(frame.function_name.rsplit(".", 1)[-1] == _PARAM_INIT[1] and frame.file_name.endswith(_PARAM_INIT[0])
               for frame in getattr(traceback, "frames", ()))


def _report(trace: Any, sink: Sink, traceback: Any, name_stack: str, api: str, location: str | None = None) -> None:
    if in_scope(name_stack, SHARED_RANDOMNESS_SCOPE) or any(_in_param_init(tb) for tb in
                                                            (traceback, *(tb for _, tb in _outer()))):
        return
    vmap, wrapper = _vmap_of(trace)
    size = batching.axis_size(trace)
    tracebacks = (traceback, *(tb for _, tb in reversed(_outer())))
    if location is None:
        # Inside a cached re-trace the traceback ends at its jit; the enclosing frames say more.
        location = next((found for found in map(traceback_location, tracebacks) if found), "")
    frame = next((found for found in map(user_frame, tracebacks) if found), None)
    sink.report(SharedDraw(api, location, vmap, wrapper, size if isinstance(size, int) else None, frame))


# -- calls bound once for the whole batch ------------------------------------------------------

_HAS_DRAWS: weakref.WeakKeyDictionary[core.Jaxpr, bool] = weakref.WeakKeyDictionary()


def _has_draws(jaxpr: core.Jaxpr) -> bool:
    """True if ``jaxpr`` (or a jaxpr nested in it) binds a draw primitive."""
    try:
        known = _HAS_DRAWS.get(jaxpr)
    except TypeError:
        known = None
    if known is not None:
        return known
    found = False
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in _DRAWS:
            found = True
            break
        subs = (sub_jaxpr(v) for value in eqn.params.values()
                for v in (value if isinstance(value, (tuple, list)) else (value,)))
        if any(s is not None and _has_draws(s[0]) for s in subs):
            found = True
            break
    with contextlib.suppress(TypeError):
        _HAS_DRAWS[jaxpr] = found
    return found


def _check_unmapped_call(trace: Any, sink: Sink, jaxpr: core.Jaxpr) -> None:
    """Every live draw of a call bound once for the whole batch is shared, unless its key derives
    from this vmap's ``axis_index``. keyfan's own hashes are checked at their samplers' entry."""
    closed = core.ClosedJaxpr(jaxpr, [None] * len(jaxpr.constvars))
    axis_name = batching.axis_name(trace)
    analysis = analyze(closed, [frozenset()] * len(jaxpr.invars), axis_levels={axis_name: frozenset({0})},
                       ledger=False)
    info = source_info_util.current()
    called_at = traceback_location(info.traceback)
    outer_stack = _name_stack()
    api = traceback_api(info.traceback)
    for site in analysis.sites:
        if site.primitive == HASH_SCOPE or 0 in site.levels or site.id not in analysis.live:
            continue
        location = site.location or called_at
        if called_at and location != called_at and not location.startswith(called_at.split(" <- ")[0]):
            location = f"{location} (called at {called_at})"
        _report(trace, sink, info.traceback, f"{outer_stack}/{site.name_stack}", what(site.primitive, api or site.api),
                location=location)
