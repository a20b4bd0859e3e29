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
from collections.abc import Iterator, Sequence
from typing import Any

import jax

from keyfan import _kernel
from keyfan._checks import is_typed_key
from keyfan._jaxinternals import batching, core, require_sanitizer
from keyfan._jaxinternals import source_info as source_info_util
from keyfan._jaxinternals.config import trace_context_state
from keyfan._keyflow import replay
from keyfan._keyflow.errors import SharedRandomnessError, SharedRandomnessWarning
from keyfan._keyflow.findings import Finding, error_text, in_vmap
from keyfan._keyflow.flow import Analysis, analyze, sub_jaxpr
from keyfan._keyflow.primitives import DRAWS, HASH_SCOPE, declared_shared, draw_name, keys_of
from keyfan._keyflow.source import traceback_api, traceback_location, user_frame

__all__ = ["Sink", "active", "check_key", "checking"]


_MODE = trace_context_state(
    "keyfan_sanitize_mode", "off",
    help="keyfan's shared-draw check (set by kf.sanitize and kf.audit; part of the trace context).")
"""``"off"`` or a fresh token per check: traces made under a check are cached under its token."""

_TOKENS = itertools.count()


@dataclasses.dataclass
class Sink:
    """What a check does with a shared draw: ``"error"`` raises, ``"warn"`` warns once per source
    line, ``"collect"`` keeps it in :attr:`found`."""

    action: str
    found: list[Finding] = dataclasses.field(default_factory=list)

    def report_all(self, draws: Sequence[Finding]) -> None:
        """Reports the shared draws of one vmap: ``"error"`` raises one error listing them all."""
        __tracebackhide__ = True
        fresh = [d for d in dict.fromkeys(draws) if self._keep(d)]
        if self.action == "error" and fresh:
            raise SharedRandomnessError(error_text("kf.sanitize", fresh), fresh)
        if self.action == "warn":
            replay.record(draws)  # kept with the jits being traced, and reported by later calls of them
            for draw in fresh:
                file, line = draw.frame or ("<unknown>", 0)
                warning = SharedRandomnessWarning(error_text("kf.sanitize", [draw]), [draw])
                warnings.warn_explicit(warning, SharedRandomnessWarning, file, line)

    def _keep(self, draw: Finding) -> bool:
        # One draw can be seen on several paths (an inlined jit, its inner jit, the primitive),
        # the same line each time, or none where a cached re-trace hides it: keep one per line.
        same_vmap = [f for f in self.found if f.batch == draw.batch]
        if any(f.location == draw.location for f in same_vmap) or (not draw.location and same_vmap):
            return False
        for unknown in [f for f in same_vmap if not f.location]:
            self.found.remove(unknown)
        self.found.append(draw)
        return True


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
    return bool(_MODE.value != "off")


@contextlib.contextmanager
def checking(sink: Sink) -> Iterator[Sink]:
    """Checks every vmap traced inside the block, reporting to ``sink``."""
    _install()
    _sinks().append(sink)
    try:
        # A sanitize block's mode is the same token every time, so a function traced under the
        # check is traced once and its cache entry reused by every later block (a trace that
        # finds a shared draw raises and is never cached). An audit collects what a trace finds,
        # so it must see every trace: each audit gets a fresh token.
        token = f"collect-{next(_TOKENS)}" if sink.action == "collect" else sink.action
        with _MODE(token):
            yield sink
    finally:
        _sinks().pop()
        _uninstall()


def check_globally(action: str) -> None:
    """Turns a check on for the whole program (all threads), as ``KEYFAN_SANITIZE`` does."""
    _install()
    _GLOBAL.append(Sink(action))
    jax.config.update("keyfan_sanitize_mode", action)  # type: ignore[no-untyped-call]


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
_ORIGINAL_CALLS = batching.CALL_METHODS
_ORIGINAL_BATCH = batching.batch
_lock = threading.Lock()
_installed = 0


def _install() -> None:
    global _installed
    require_sanitizer()
    with _lock:
        _installed += 1
        if _installed == 1:
            batching.patch(_process_primitive, _init, calls={name: _call_wrapper(name) for name in _ORIGINAL_CALLS},
                           batch=_batch, from_elt=_from_elt)
            replay.install(_sink)
            _kernel.set_draw_hook(check_key)


def _uninstall() -> None:
    global _installed
    with _lock:
        _installed -= 1
        if _installed == 0 and not _GLOBAL:
            batching.restore()
            replay.uninstall()
            _kernel.set_draw_hook(None)


# -- one user vmap being traced: its pending reports, decided when its trace ends ------------------

@dataclasses.dataclass(eq=False)
class _Pending:
    """A shared draw found in a vmap, reported if its values reach one of the vmap's mapped outputs."""

    draw: Finding
    vmap: _Vmap | None
    live: bool = False
    declared: bool = False
    """The draw itself, or a value derived from it without batched data, leaves the vmap through an
    output declared unmapped (``out_axes=None``): the user (or the library: shared parameters
    under ``nn.vmap``, ``nnx.vmap``, ``hk.vmap``) says it is one value for every example, so its
    other uses are uses of a shared value. A reduction over the batch (``pmean``) of values
    computed from it declares nothing: it is a use (:attr:`live`)."""


@dataclasses.dataclass(eq=False)
class _Vmap:
    """A user vmap (``jax.vmap`` and the wrappers built on it) while its function is traced."""

    exempt: bool
    """A vmap JAX makes for itself (the basis of ``jacfwd``/``hessian``): sharing is its design."""
    sealed: bool = False
    """Every input is mapped: an unmapped key can only be closed over or made from a constant."""
    tag: Any = None
    pending: list[_Pending] = dataclasses.field(default_factory=list)


class _State(threading.local):
    def __init__(self) -> None:
        self.vmaps: list[_Vmap] = []
        self.taint: dict[int, tuple[Any, dict[_Pending, bool]]] = {}
        """Values derived from a pending draw (by ``id``, the value kept alive), and the draws, each
        with whether the value derives from it without batched data (:data:`Taint`)."""
        self.origins: dict[int, tuple[Any, str, bool]] = {}
        """Unmapped values that are, or derive only from unmapped arguments of a user vmap (by
        ``id``, the value kept alive): the argument's description, and whether it IS the argument."""


_state = _State()
_RETRACES: weakref.WeakSet[Any] = weakref.WeakSet()
"""BatchTraces of a batching rule re-tracing a sub-jaxpr: checked where the rule was called."""
_JAX_API = os.path.join("jax", "_src", "api.py")
_AUTODIFF_BASIS_CALLER = "jacfun"
"""The function of ``jacfwd`` and ``jacrev`` (so ``hessian``) that vmaps over basis vectors."""


def _batch(fun: Any, axis_data: Any, in_dims: Any, out_dim_dests: Any, sum_match: bool = False) -> Any:
    return _vmap_scope(_ORIGINAL_BATCH(fun, axis_data, in_dims, out_dim_dests, sum_match), fun, in_dims)


def _from_elt(trace: Any, axis_size: Any, mesh_axis: Any, sum_match: bool, i: int, x: Any, spec: Any) -> Any:
    """One output of a user vmap leaving it (the adapter gives JAX 0.9's form on every version)."""
    _output(x, spec)
    return batching.from_elt(trace, axis_size, mesh_axis, sum_match, i, x, spec)


def _autodiff_basis() -> bool:
    """True for the vmap of ``jacfwd``/``hessian``/``jacrev`` over basis vectors, which JAX's
    own ``api.py`` makes (inside their ``jacfun``, on every JAX): one primal for every direction, by
    design. Other frames of ``api.py`` (``vmap_f``; ``make_jaxpr_f``, which on JAX < 0.10 sits right
    above a vmap the audit traces) are not decisive."""
    for frame in getattr(source_info_util.current().traceback, "frames", ()):
        path = os.path.realpath(frame.file_name)
        if path.endswith(_JAX_API):
            if frame.function_name.rsplit(".", 1)[-1] == _AUTODIFF_BASIS_CALLER:
                return True
        elif not path.startswith(_SKIPPED_DIRS):
            return False
    return False


_SKIPPED_DIRS = (os.path.join(os.path.realpath(os.path.dirname(jax.__file__)), ""),
                 os.path.join(os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ""))
"""JAX's and keyfan's own directories: frames there neither make nor use a vmap of the user's."""


@batching.transformation
def _vmap_scope(f: Any, fun: Any, in_dims: Any, *args: Any) -> Any:
    __tracebackhide__ = True
    if _MODE.value == "off":
        return f(*args)
    dims = in_dims() if callable(in_dims) else in_dims
    unmapped = [(value, name) for value, name, dim in zip(args, batching.arg_names(fun, len(args)), dims, strict=False)
                if dim is None]
    vmap = _Vmap(exempt=_autodiff_basis(), sealed=not unmapped)
    for value, name in unmapped:
        if name and _key_material(value):
            _state.origins[id(value)] = (value, f"the argument `{name}` of the vmapped function", True)
    _state.vmaps.append(vmap)
    try:
        out = f(*args)
    finally:
        _state.vmaps.pop()
        if not _state.vmaps:
            _state.taint.clear()
            _state.origins.clear()
    live = [p.draw for p in vmap.pending if p.live and not p.declared]
    sink = _sink()
    if live and sink is not None and not vmap.exempt:
        sink.report_all(live)
    return out


def _vmap_of_trace(trace: Any) -> _Vmap | None:
    tag = batching.tag(trace)
    return next((v for v in reversed(_state.vmaps) if v.tag is tag), None)


def _output(x: Any, spec: Any) -> None:
    """An output of a user vmap: a pending draw whose values reach it is live, unless the output
    is declared unmapped (``out_axes=None``: the same for every example, by the user's word) and
    derives from the draw without batched data (a reduction over the batch declares nothing)."""
    if _state.taint:
        found = _state.taint.get(id(x))
        if found is not None and found[0] is x:
            for pending, pure in found[1].items():
                if spec is None and pure:
                    pending.declared = True
                else:
                    pending.live = True


def _values(values: Any) -> Sequence[Any]:
    """The flat values of a trace's results (a list, one value, or JAX's ``FlatTree``)."""
    if isinstance(values, (list, tuple)):
        return values
    flat = getattr(values, "vals", None)
    return list(flat) if flat is not None else (values,)


Taint = dict[_Pending, bool]
"""The pending draws a value derives from, each with True if it derives from it without batched
data (every equation on the way had unbatched operands only): the draw itself, or parameters
built from it, as opposed to a reduction over the batch of values computed from it."""


def _taint(values: Any, pending: Taint) -> None:
    if not pending:
        return
    for value in _values(values):
        known = _state.taint.get(id(value))
        if known is None or known[0] is not value:
            _state.taint[id(value)] = (value, dict(pending))
        else:  # seen on another path (an inner equation): the first, most precise, word stays
            for draw, pure in pending.items():
                known[1].setdefault(draw, pure)


def _taint_of(value: Any) -> Taint:
    known = _state.taint.get(id(value)) if _state.taint else None
    return known[1] if known is not None and known[0] is value else {}


def _tainted(values: Any, mixed: bool = False) -> Taint:
    """What values computed from ``values`` derive from; ``mixed``: batched data is among them."""
    found: Taint = {}
    for value in values:
        for draw, pure in _taint_of(value).items():
            found[draw] = found.get(draw, True) and pure and not mixed
    return found


def _key_material(value: Any) -> bool:
    """A value a key can come from: a typed key, raw key data or an integer seed (only these are
    followed, so the values kept alive while a vmap is traced stay small)."""
    try:
        aval = jax.typeof(value)
    except TypeError:
        return False
    return is_typed_key(aval) or jax.numpy.issubdtype(aval.dtype, jax.numpy.integer)


def _origin_of(value: Any) -> tuple[str, bool] | None:
    found = _state.origins.get(id(value)) if _state.origins else None
    return (found[1], found[2]) if found is not None and found[0] is value else None


def _origin_clause(trace: Any, values: Sequence[Any]) -> str:
    """Where a shared draw's key comes from, given the operands its key derives from."""
    for value in values:
        found = _origin_of(value)
        if found is not None:
            name, direct = found
            return (f"is {name}, passed unmapped (in_axes=None)" if direct
                    else f"is derived from {name}, passed unmapped (in_axes=None)")
    vmap = _vmap_of_trace(trace)
    if vmap is not None and vmap.sealed:
        return ("comes from no argument of the vmapped function (every argument is mapped): it is closed over, "
                "or made from a constant seed inside")
    return ""


def _propagate_origins(tracers: Any, dims: list[Any], outs: Any) -> None:
    """Outputs of an equation whose operands are all unmapped derive from the arguments they read."""
    if not _state.origins or any(d is not None for d in dims):
        return
    found = next((o for o in map(_origin_of, tracers) if o is not None), None)
    if found is None:
        return
    for value in _values(outs):
        if _origin_of(value) is None and _key_material(value):
            _state.origins[id(value)] = (value, found[0], False)


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    _ORIGINAL_INIT(self, *args, **kwargs)
    if _MODE.value == "off":
        return
    caller = sys._getframe(1)
    if batching.is_vmap_entry(caller):  # a vmap of the user's: remember where, and its tag
        _record_vmap(batching.axis_data(self))
        if _state.vmaps and _state.vmaps[-1].tag is None:
            _state.vmaps[-1].tag = batching.tag(self)
    elif batching.is_retrace(caller):  # a batching rule re-tracing a sub-jaxpr
        _RETRACES.add(self)


def _process_primitive(self: Any, p: Any, tracers: Any, params: Any, /) -> Any:
    __tracebackhide__ = True
    if _MODE.value == "off" or self in _RETRACES:
        return _ORIGINAL_PROCESS(self, p, tracers, params)
    sink = _sink()
    subs = _subs(params)
    drawn: list[_Pending] = []
    dims = [batching.batch_dim(self, t) for t in tracers]
    mixed = any(d is not None for d in dims)
    if sink is not None and p.name in DRAWS:
        operands = keys_of(p.name, len(dims))
        if all(dims[i] is None for i in operands):
            info = source_info_util.current()
            origin = _origin_clause(self, [tracers[i] for i in operands])
            drawn.extend(_report(self, info.traceback, _name_stack(),
                                 draw_name(p.name, traceback_api(info.traceback)), origin=origin))
    if subs:
        outer = _outer()
        info = source_info_util.current()
        outer.append((str(info.name_stack), info.traceback))
        try:
            outs = _ORIGINAL_PROCESS(self, p, tracers, params)
        finally:
            outer.pop()
    else:
        outs = _ORIGINAL_PROCESS(self, p, tracers, params)
    flat = outs if p.multiple_results else [outs]
    _propagate_origins(tracers, dims, flat)
    draws_inside = sink is not None and bool(subs) and any(_has_draws(jaxpr) for jaxpr, _ in subs)
    analysis = None
    if draws_inside or (subs and mixed and _state.taint and any(map(_taint_of, tracers))):
        analysis = _analyze_equation(self, p, params, tracers, dims, len(flat))
    if analysis is not None:
        # Per output, from the inputs it derives from: a call that reads the batch may still return
        # a value that depends on unbatched operands only (parameters passed through a jit).
        batched = {i for i, d in enumerate(dims) if d is not None}
        made = dict(_check_call(self, analysis, tracers)) if draws_inside else {}
        pending: Taint = {}
        for j, value in enumerate(flat):
            sources = analysis.output_sources[j] if j < len(analysis.output_sources) else frozenset(range(len(dims)))
            reads_batch = bool(sources & batched)
            taint = _tainted([tracers[i] for i in sorted(sources) if i < len(tracers)], reads_batch)
            taint.update((draw, not reads_batch) for draw in made.get(j, ()))
            _taint(value, taint)
            pending.update(taint)
    else:
        pending = _tainted(tracers, mixed)
        pending.update((draw, not mixed) for draw in drawn)
        _taint(flat, pending)
    if pending and _effectful(p, params):  # a callback or print: the values leave the program here
        for found in pending:
            found.live = True
    return outs


def _effectful(p: Any, params: dict[str, Any]) -> bool:
    return bool(getattr(p, "name", "") in ("debug_callback", "io_callback", "pure_callback", "debug_print")
                or params.get("effects"))


def _call_wrapper(name: str) -> Any:
    original = _ORIGINAL_CALLS[name]

    def process(self: Any, prim: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        if _MODE.value == "off" or self in _RETRACES:
            return original(self, prim, *args, **kwargs)
        tracers = next((_values(a) for a in args if isinstance(a, (list, tuple)) or hasattr(a, "vals")), ())
        vmap = _vmap_of_trace(self)
        before = len(vmap.pending) if vmap is not None else 0
        mixed = any(batching.batch_dim(self, t) is not None for t in tracers)
        inherited = _tainted(tracers, mixed)
        outs = original(self, prim, *args, **kwargs)
        made = vmap.pending[before:] if vmap is not None else []
        # Every output may carry what was drawn inside; the values inside were followed one by one.
        _taint(outs, {**inherited, **{draw: not mixed for draw in made}})
        return outs

    process.__name__ = name
    return process


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


def check_key(key: Any) -> None:
    """Reports a keyfan draw from ``key`` if ``key`` is not mapped over a vmap the call sits in.
    Called by keyfan's samplers at their entry point (their hashes are plain arithmetic, which
    the primitive check cannot tell from other arithmetic); free when no check is active."""
    __tracebackhide__ = True
    if _MODE.value == "off":
        return
    if _sink() is None:
        return
    for trace, dim in batching.batch_dims_outward(key):
        if trace in _RETRACES:
            return
        if dim is None:
            info = source_info_util.current()
            api = traceback_api(info.traceback) or "a keyfan draw"
            for pending in _report(trace, info.traceback, _name_stack(), api):
                pending.live = True  # the sampler's values are not followed: reported as drawn
            return


_PARAM_INIT = (os.path.join("flax", "core", "scope.py"), "param")


def _in_param_init(traceback: Any) -> bool:
    """True inside linen's ``Scope.param``: parameter initialisation, shared by design when the
    parameters are (``nn.vmap(..., variable_axes={"params": None})``)."""
    return any(frame.function_name.rsplit(".", 1)[-1] == _PARAM_INIT[1] and frame.file_name.endswith(_PARAM_INIT[0])
               for frame in getattr(traceback, "frames", ()))


def _report(trace: Any, traceback: Any, name_stack: str, api: str, location: str | None = None,
            origin: str = "") -> list[_Pending]:
    """A pending report of a shared draw over ``trace``'s vmap (none if the sharing is declared)."""
    if declared_shared(name_stack) or any(_in_param_init(tb) for tb in
                                                            (traceback, *(tb for _, tb in _outer()))):
        return []
    vmap_line, wrapper = _vmap_of(trace)
    size = batching.axis_size(trace)
    tracebacks = (traceback, *(tb for _, tb in reversed(_outer())))
    if location is None:
        # Inside a cached re-trace the traceback ends at its jit; the enclosing frames say more.
        location = next((found for found in map(traceback_location, tracebacks) if found), "")
    frame = next((found for found in map(user_frame, tracebacks) if found), None)
    origin = origin or _origin_clause(trace, [])
    draw = in_vmap(api, location, vmap=vmap_line, wrapper=wrapper, axis_size=size if isinstance(size, int) else None,
                   origin=origin, frame=frame)
    vmap = _vmap_of_trace(trace)
    pending = _Pending(draw, vmap, live=vmap is None)
    if vmap is not None:
        vmap.pending.append(pending)
    elif (sink := _sink()) is not None:
        sink.report_all([draw])  # a BatchTrace of no user vmap (pmap, say): reported at once
    return [pending]


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
        if eqn.primitive.name in DRAWS:
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


def _check_call(trace: Any, analysis: Analysis, tracers: Any) -> list[tuple[int, tuple[_Pending, ...]]]:
    """The draws inside an equation with sub-jaxprs (``jit``, ``cond``, ``while``, ``scan``, ...)
    bound at this vmap, analysed with the key-flow engine from the operands' real batch dims
    (:func:`_analyze_equation`): a live draw whose key does not derive from a batched operand or
    this vmap's ``axis_index`` is shared. (A batched predicate makes JAX batch every operand of
    ``cond``/``while`` before it re-traces the branches, so the draws inside cannot be judged
    there.) Returns, per output of the equation, the pending reports of the draws whose values
    reach it."""
    info = source_info_util.current()
    called_at = traceback_location(info.traceback)
    outer_stack = _name_stack()
    api = traceback_api(info.traceback)
    reports: dict[int, list[_Pending]] = {}
    for site in analysis.sites:
        if site.primitive == HASH_SCOPE or 0 in site.levels or site.id not in analysis.live:
            continue
        location = site.location or called_at
        if called_at and location != called_at and not location.startswith(called_at.split(" <- ")[0]):
            location = f"{location} (called at {called_at})"
        origin = _origin_clause(trace, [tracers[i] for i in sorted(site.sources) if i < len(tracers)])
        reports[site.id] = _report(trace, info.traceback, f"{outer_stack}/{site.name_stack}",
                                   draw_name(site.primitive, api or site.api), location=location, origin=origin)
    return [(j, tuple(p for d in draws if d in reports for p in reports[d]))
            for j, draws in enumerate(analysis.outputs) if any(d in reports for d in draws)]


def _analyze_equation(trace: Any, p: Any, params: dict[str, Any], tracers: Any, dims: list[Any],
                      n_out: int) -> Analysis | None:
    avals = [t.aval if core.is_tracer(t) else jax.typeof(t) for t in tracers]
    try:
        closed = core.one_equation(p, params, avals, n_out, source_info_util.current())
    except Exception:
        return None
    levels = [frozenset() if d is None else frozenset({0}) for d in dims]
    return analyze(closed, levels, axis_levels={batching.axis_name(trace): frozenset({0})}, ledger=False)
