"""The key-flow engine: one loop over ``jaxpr.eqns`` and one table from primitive to rule.

:func:`analyze` runs a traced per-example function once, computing for every value its
:class:`~keyfan._keyflow.values.Mark` (vmap levels, sources, draws it depends on) and its value
number, and records

* every random draw (:class:`DrawSite`) with the levels its key varies over: ``random_bits`` and
  ``random_gamma`` read their key operand; keyfan's inlined hash (``_hashes``) and JAX's
  ``threefry2x32`` read all their operands, since hashing a per-example counter
  (``kf.at(key, i)``) gives per-example values;
* every key consumption in a :class:`~keyfan._keyflow.ledger.Ledger`, which reports reuse.

``axis_index`` of a mapped axis varies over its level; ``psum``-like collectives over it do not.
Sub-jaxprs are followed per call site: calls (``jit``, ``closed_call``, ``remat``,
``custom_jvp_call``, ``custom_vjp_call``, ``shard_map``) map inputs to inputs; ``cond``, ``scan``
and ``while`` have dedicated rules (``_loops``). Any other primitive with sub-jaxprs is handled
conservatively: every input reaches every output. "Varies" is over-approximated (a value
computed from mapped data counts as per-example), so a draw reported as shared is shared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple

from keyfan._jaxinternals import core
from keyfan._keyflow import rules as _rules
from keyfan._keyflow.hashes import HASH_SCOPE, hash_outputs
from keyfan._keyflow.ledger import Event, Ledger, Use
from keyfan._keyflow.rules import makes_copies, size
from keyfan._keyflow.source import api_name, call_instance, join_stack, library_name, location
from keyfan._keyflow.values import EMPTY, Mark, Numbering, Val, content_key, join, key_like

__all__ = ["Analysis", "DrawSite", "analyze"]

_CALL_PARAMS = ("jaxpr", "call_jaxpr", "fun_jaxpr")


@dataclasses.dataclass
class DrawSite:
    """One random draw at one call site, merged over every loop iteration analysed."""

    id: int
    primitive: str
    """``"random_bits"``, ``"random_gamma"``, ``"threefry2x32"`` or ``HASH_SCOPE``."""
    levels: frozenset[int]
    """The vmap levels its key varies over in EVERY iteration (iteration 0 included)."""
    sources: frozenset[int]
    """Indices of the function inputs its key derives from."""
    consts: frozenset[int]
    """Closed-over key-like constants its key derives from."""
    fed_by: frozenset[int]
    """Ids of the draws whose results flow into its key (keyfan's derivations, say)."""
    name_stack: str
    location: str
    api: str = ""
    """The random API the user called (``jax.random.normal``), or ``""``."""
    bits: bool = True
    """False for a keyfan hash whose outputs are only ever key data (``kf.at``, ``kf.named``):
    a key derivation, not a draw of random values."""


@dataclasses.dataclass(frozen=True)
class Analysis:
    """What one run of the engine found."""

    sites: list[DrawSite]
    """Every draw, in program order."""
    events: list[Event]
    """Key misuse found by the ledger (empty when the ledger was off)."""
    live: frozenset[int]
    """Ids of the draws whose results reach an output."""
    outputs: tuple[frozenset[int], ...] = ()
    """For each output, the ids of the draws whose results reach it."""
    output_sources: tuple[frozenset[int], ...] = ()
    """For each output, the inputs it derives from (data dependence, reductions included)."""


class Call(NamedTuple):
    """An enclosing equation with sub-jaxprs (a call site)."""

    id: int
    where: str
    """Its user source line."""
    instance: int | None
    """Its call instance (``_source.call_instance``)."""
    api: str
    """The random API the user called to make it, or ``""``."""
    library: str | None = None
    """The installed package whose code made it (``source.library_name``)."""


class Ctx(NamedTuple):
    """Where the analysis is: the enclosing scopes and what to record."""

    stack: str
    where: str
    calls: tuple[Call, ...]
    """The enclosing call sites, outermost first."""
    record: bool
    ledger: Ledger | None

    @property
    def path(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.calls)


def analyze(closed: core.ClosedJaxpr, in_levels: Sequence[frozenset[int]], *,
            axis_levels: Mapping[Any, frozenset[int]] | None = None, ledger: bool = True) -> Analysis:
    """Runs the analysis on the jaxpr of one example.

    Args:
      closed: the closed jaxpr of the per-example function.
      in_levels: for each input, the vmap levels it is mapped over.
      axis_levels: for each axis name, the levels whose ``axis_index`` it returns.
      ledger: also track key consumption (reuse findings).
    """
    if len(in_levels) != len(closed.jaxpr.invars):
        raise ValueError(f"in_levels has {len(in_levels)} entries for {len(closed.jaxpr.invars)} inputs.")
    flow = Flow(axis_levels or {})
    ins = [Val(Mark(levels=frozenset(lv), sources=frozenset({i})), flow.numbering.intern(("input", i)))
           for i, lv in enumerate(in_levels)]
    book = Ledger(flow.numbering) if ledger else None
    outs = flow.run(closed.jaxpr, flow.consts(closed.jaxpr, closed.consts), ins, Ctx("", "", (), True, book))
    outputs = tuple(o.mark.draws for o in outs)
    return Analysis(list(flow.sites.values()), book.events if book else [], frozenset().union(*outputs), outputs,
                    tuple(o.mark.sources for o in outs))


def sub_jaxpr(value: object) -> tuple[core.Jaxpr, int] | None:
    """A jaxpr param as (open jaxpr, number of constvars)."""
    if isinstance(value, core.ClosedJaxpr):
        return value.jaxpr, len(value.jaxpr.constvars)
    if isinstance(value, core.Jaxpr):
        return value, len(value.constvars)
    return None


def _sub_jaxprs(params: dict[str, object]) -> list[tuple[core.Jaxpr, int]]:
    """Every jaxpr among an equation's params, also inside tuples (``cond``'s branches)."""
    found = []
    for value in params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            sub = sub_jaxpr(item)
            if sub is not None:
                found.append(sub)
    return found


class Flow:
    """One analysis: the value numbering, the draw sites found, and the rules."""

    def __init__(self, axis_levels: Mapping[Any, frozenset[int]]):
        self.axis_levels = dict(axis_levels)
        self.numbering = Numbering()
        self.sites: dict[tuple[Any, ...], DrawSite] = {}
        self._site_ids: dict[tuple[Any, ...], int] = {}
        self._param_keys: dict[int, Hashable] = {}

    # -- the loop --------------------------------------------------------------------------

    def run(self, jaxpr: core.Jaxpr, consts: Sequence[Val], ins: Sequence[Val], ctx: Ctx) -> list[Val]:
        env: dict[Any, Val] = {}

        def read(atom: Any) -> Val:
            if isinstance(atom, core.Literal):
                return Val(EMPTY, self.numbering.literal(atom))
            return env[atom]

        env.update(zip(jaxpr.constvars, consts, strict=True))
        env.update(zip(jaxpr.invars, ins, strict=True))
        hashes = hash_outputs(jaxpr)
        for eqn in jaxpr.eqns:
            here = ctx._replace(stack=join_stack(ctx.stack, str(eqn.source_info.name_stack)))
            outs = self.eqn(eqn, [read(v) for v in eqn.invars], here)
            for index, (var, val) in enumerate(zip(eqn.outvars, outs, strict=True)):
                if var in hashes:
                    val = self._hash(eqn, index, val, hashes[var], here)
                env[var] = val
        return [read(v) for v in jaxpr.outvars]

    def run_closed(self, closed: core.ClosedJaxpr, ins: Sequence[Val], ctx: Ctx) -> list[Val]:
        return self.run(closed.jaxpr, self.consts(closed.jaxpr, closed.consts), ins, ctx)

    def eqn(self, eqn: core.JaxprEqn, ins: list[Val], ctx: Ctx) -> list[Val]:
        rule = _rules.RULES.get(eqn.primitive.name)
        if rule is not None:
            return rule(self, eqn, ins, ctx)
        subs = _sub_jaxprs(eqn.params)
        if subs:
            return self._call(eqn, ins, ctx, subs)
        return self.default(eqn, ins)

    # -- helpers used by the rules -----------------------------------------------------------

    def consts(self, jaxpr: core.Jaxpr, values: Sequence[Any] | None = None) -> list[Val]:
        """Values of a jaxpr's constvars, numbered by content when known (two closures over one
        key are one key); closed-over key-like constants are tracked."""
        vals = []
        for i, var in enumerate(jaxpr.constvars):
            content = content_key(values[i]) if values is not None and i < len(values) else None
            vn = self.numbering.intern(("const", id(jaxpr), i) if content is None else content)
            vals.append(Val(Mark(consts=frozenset({vn})) if key_like(var.aval) else EMPTY, vn))
        return vals

    def enter(self, eqn: core.JaxprEqn, ctx: Ctx) -> Ctx:
        """The context of a sub-jaxpr of ``eqn``."""
        if not (ctx.record or ctx.ledger is not None):
            return ctx._replace(calls=(*ctx.calls, Call(id(eqn), ctx.where, None, "")))
        where = location(eqn, ctx.where)
        call = Call(id(eqn), where, call_instance(eqn), api_name(eqn), library_name(eqn))
        return ctx._replace(calls=(*ctx.calls, call), where=where)

    def api(self, eqn: core.JaxprEqn, ctx: Ctx) -> str:
        """The random API behind ``eqn``: the outermost one named among its enclosing calls (inner
        tracebacks stop at ``jit`` boundaries)."""
        return next((c.api for c in ctx.calls if c.api), "") or api_name(eqn)

    def numbers(self, eqn: core.JaxprEqn, ins: Sequence[Val]) -> list[int]:
        """Value numbers of ``eqn``'s outputs: equal for equal inputs, unless effectful."""
        if eqn.effects:
            return [self.numbering.fresh() for _ in eqn.outvars]
        in_vns = tuple(v.vn for v in ins)
        try:
            key = (eqn.primitive.name, self._params_key(eqn), in_vns)
            outs = [self.numbering.intern((*key, i), in_vns) for i in range(len(eqn.outvars))]
        except (TypeError, ValueError):
            outs = [self.numbering.fresh(in_vns) for _ in eqn.outvars]
        if makes_copies(eqn, ins, self.numbering):
            self.numbering.copies.update(outs)
        return outs

    def default(self, eqn: core.JaxprEqn, ins: Sequence[Val], mark: Mark | None = None) -> list[Val]:
        mark = join(v.mark for v in ins) if mark is None else mark
        return [Val(mark, vn) for vn in self.numbers(eqn, ins)]

    def draw(self, eqn: core.JaxprEqn, index: int, key: Mark, ctx: Ctx, primitive: str | None = None,
             bits: bool = True) -> int:
        """Registers a draw at this call site and returns its id."""
        site = (ctx.path, id(eqn), index)
        did = self._site_ids.setdefault(site, len(self._site_ids))
        if ctx.record:
            found = self.sites.get(site)
            if found is None:
                self.sites[site] = DrawSite(did, primitive or eqn.primitive.name, key.levels, key.sources,
                                            key.consts, key.draws, ctx.stack, location(eqn, ctx.where),
                                            self.api(eqn, ctx), bits)
            else:
                found.bits |= bits
                found.levels &= key.levels
                found.sources |= key.sources
                found.consts |= key.consts
                found.fed_by |= key.draws
        return did

    def library(self, eqn: core.JaxprEqn, ctx: Ctx) -> str:
        """The package whose code made ``eqn``; inside a ``jit`` whose traceback holds JAX's frames
        only, that of the innermost enclosing call that knows."""
        found = library_name(eqn)
        if found is None:
            found = next((c.library for c in reversed(ctx.calls) if c.library is not None), "")
        return found

    def use(self, eqn: core.JaxprEqn, how: str, ctx: Ctx, *, count: int | None = None,
            data: int | None = None, draw: int | None = None) -> Use:
        where = location(eqn, ctx.where)
        calls = (*ctx.calls, Call(id(eqn), where, call_instance(eqn), ""))
        depth = next(i for i, c in enumerate(calls) if c.where == where)
        instance = calls[depth].instance
        call = None if instance is None else (ctx.path[:depth], instance)
        return Use(how, where, ctx.stack, api=self.api(eqn, ctx), call=call, count=count, data=data, draw=draw,
                   library=self.library(eqn, ctx))

    def consume(self, eqn: core.JaxprEqn, key: Val, how: str, ctx: Ctx, outs: Sequence[Val] = (),
                count: int | None = None, draw: int | None = None) -> None:
        """Records that ``eqn`` consumes ``key`` (hashing ``count`` counters under it, if known);
        if that is a second use, the outputs (the children of a second split) repeat earlier
        ones and are not reported again."""
        if ctx.ledger is None:
            return
        use = self.use(eqn, how, ctx, count=count, draw=draw)
        if key.vn in self.numbering.copies and size(eqn.invars[0]) > 1:
            ctx.ledger.report("broadcast-key", use)
        if ctx.ledger.consume(key.vn, use):
            ctx.ledger.duplicates.update(o.vn for o in outs)

    def _params_key(self, eqn: core.JaxprEqn) -> Hashable:
        key = self._param_keys.get(id(eqn))
        if key is None:
            items = tuple(sorted(eqn.params.items(), key=lambda item: item[0]))
            try:
                hash(items)
                key = items
            except TypeError:
                key = ("eqn", id(eqn))
            self._param_keys[id(eqn)] = key
        return key

    def _hash(self, eqn: core.JaxprEqn, index: int, val: Val, bits: bool, ctx: Ctx) -> Val:
        """An output of keyfan's hash: a draw (varying iff any operand varies)."""
        did = self.draw(eqn, index, val.mark, ctx, primitive=HASH_SCOPE, bits=bits)
        if bits:
            self.consume(eqn, Val(val.mark, val.vn), "bits", ctx, draw=did)
        return Val(val.mark._replace(draws=val.mark.draws | {did}), val.vn)

    def _call(self, eqn: core.JaxprEqn, ins: list[Val], ctx: Ctx,
              subs: list[tuple[core.Jaxpr, int]]) -> list[Val]:
        inner = self.enter(eqn, ctx)
        call = next((sub_jaxpr(eqn.params[p]) for p in _CALL_PARAMS if p in eqn.params), None)
        if len(subs) == 1 and call is not None and len(call[0].invars) == len(ins) \
                and len(call[0].outvars) == len(eqn.outvars):
            return self.run(call[0], self.consts(call[0]), ins, inner)
        # Unknown structure: every input reaches every sub-jaxpr input and every output.
        joined = join(v.mark for v in ins)
        found = [joined]
        for jaxpr, _ in subs:
            outs = self.run(jaxpr, self.consts(jaxpr), [Val(joined, self.numbering.fresh()) for _ in jaxpr.invars],
                            inner._replace(ledger=None))
            found.extend(o.mark for o in outs)
        return self.default(eqn, ins, mark=join(found))
