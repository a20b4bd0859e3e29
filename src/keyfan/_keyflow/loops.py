"""Rules for control flow: ``cond``, ``scan`` and ``while``.

Levels. A ``cond`` joins its branches, and a mapped index makes every output mapped. A loop's
body is analysed from every reachable carry state, starting with the initial one: iteration 0
really uses the initial key, so ``draw(k); k = fold_in(k, x)`` with an unmapped ``k`` is a
shared draw even though the carry varies from iteration 1 on. States are enumerated until one
repeats (or a scan's length is reached); after ``_MAX_STATES`` they are widened to a fixpoint.

Reuse. Branches are alternatives (forked ledgers). A loop body is run once more with symbolic
carries and slices; a key the body consumes that does not depend on them (a closed-over key, a
carry passed through unchanged) is consumed on every iteration, and a carried key the body has
already consumed is consumed again by the next iteration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from keyfan._jaxinternals import core
from keyfan._keyflow.ledger import Ledger, Use
from keyfan._keyflow.source import location
from keyfan._keyflow.values import EMPTY, Mark, Val, join

if TYPE_CHECKING:
    from keyfan._keyflow.flow import Ctx, Flow

__all__ = ["cond", "scan", "while_loop"]

_MAX_STATES = 16

Step = Callable[[tuple[Mark, ...], bool], tuple[list[Mark], list[Mark], list[Val]]]
"""(carry marks, record) -> (next carry marks, other output marks, output values)."""


def cond(flow: Flow, eqn: core.JaxprEqn, ins: list[Val], ctx: Ctx) -> list[Val]:
    index, operands = ins[0], ins[1:]
    inner = flow.enter(eqn, ctx)
    branches = eqn.params["branches"]
    forks = [ctx.ledger.fork() if ctx.ledger is not None else None for _ in branches]
    results = [flow.run_closed(branch, operands, inner._replace(ledger=fork))
               for branch, fork in zip(branches, forks, strict=True)]
    if ctx.ledger is not None:
        ctx.ledger.merge([f for f in forks if f is not None])
    in_vns = tuple(v.vn for v in ins)
    outs = []
    for j, vals in enumerate(zip(*results, strict=True)):
        vns = {v.vn for v in vals}
        vn = vns.pop() if len(vns) == 1 else flow.numbering.intern(("cond", id(eqn), in_vns, j), in_vns)
        outs.append(Val(join([index.mark, *(v.mark for v in vals)]), vn))
    return outs


def scan(flow: Flow, eqn: core.JaxprEqn, ins: list[Val], ctx: Ctx) -> list[Val]:
    params = eqn.params
    n_consts, n_carry, length = params["num_consts"], params["num_carry"], params["length"]
    consts, init, xs = ins[:n_consts], ins[n_consts:n_consts + n_carry], ins[n_consts + n_carry:]
    body = params["jaxpr"]
    inner = flow.enter(eqn, ctx)
    loop = _Loop(flow, eqn, ins, init, location(eqn, ctx.where))
    slices = [Val(x.mark, flow.numbering.intern(("slice", x.vn), (x.vn,))) for x in xs]
    loop.symbols.update(v.vn for v in slices)

    def step(state: tuple[Mark, ...], record: bool, vns: Sequence[int] = loop.carry_symbols,
             ledger: Ledger | None = None) -> tuple[list[Mark], list[Mark], list[Val]]:
        carry = [Val(m, vn) for m, vn in zip(state, vns, strict=True)]
        outs = flow.run_closed(body, [*consts, *carry, *slices], inner._replace(record=record, ledger=ledger))
        return [o.mark for o in outs[:n_carry]], [o.mark for o in outs[n_carry:]], outs

    after, ys, first = _explore(step, [v.mark for v in init], length, ctx.record)
    carry_marks = after if after is not None else [v.mark for v in init]
    ys_marks = ys if ys is not None else [EMPTY] * (len(eqn.outvars) - n_carry)
    loop.settle(first)
    passed_on = {}
    if first is not None and ctx.ledger is not None:
        passed_on = loop.check(lambda vns, ledger: step(tuple(v.mark for v in init), False, vns, ledger)[2],
                               ctx.ledger, repeats=length > 1)
    return loop.outputs(carry_marks, ys_marks, passed_on, ctx.ledger)


def while_loop(flow: Flow, eqn: core.JaxprEqn, ins: list[Val], ctx: Ctx) -> list[Val]:
    params = eqn.params
    n_cond, n_body = params["cond_nconsts"], params["body_nconsts"]
    cond_consts, body_consts, init = ins[:n_cond], ins[n_cond:n_cond + n_body], ins[n_cond + n_body:]
    inner = flow.enter(eqn, ctx)
    loop = _Loop(flow, eqn, ins, init, location(eqn, ctx.where))

    def step(state: tuple[Mark, ...], record: bool, vns: Sequence[int] = loop.carry_symbols,
             ledger: Ledger | None = None) -> tuple[list[Mark], list[Mark], list[Val]]:
        carry = [Val(m, vn) for m, vn in zip(state, vns, strict=True)]
        sub = inner._replace(record=record, ledger=ledger)
        (predicate,) = flow.run_closed(params["cond_jaxpr"], [*cond_consts, *carry], sub)
        outs = flow.run_closed(params["body_jaxpr"], [*body_consts, *carry], sub)
        nxt = [join((o.mark, predicate.mark)) for o in outs]
        if predicate.mark.levels:  # per-example trip counts: select(predicate, new, old)
            nxt = [join((n, s)) for n, s in zip(nxt, state, strict=True)]
        return nxt, [], outs

    after, _, first = _explore(step, [v.mark for v in init], None, ctx.record)
    marks = [join((a, v.mark)) for a, v in zip(after, init, strict=True)] if after else [v.mark for v in init]
    loop.settle(first)
    passed_on = {}
    if first is not None and ctx.ledger is not None:
        passed_on = loop.check(lambda vns, ledger: step(tuple(v.mark for v in init), False, vns, ledger)[2],
                               ctx.ledger, repeats=True)
    return loop.outputs(marks, [], passed_on, ctx.ledger)


def _explore(step: Step, init: list[Mark], limit: int | None, record: bool
             ) -> tuple[list[Mark] | None, list[Mark] | None, list[Val] | None]:
    """Runs the body from every reachable carry state, recording draws in each (if ``record``).

    Returns the join of the carry states after at least one iteration, the join of the other
    outputs, and the outputs of iteration 0 (None for all three if the body never runs).
    """
    state: tuple[Mark, ...] = tuple(init)
    seen: set[tuple[Mark, ...]] = set()
    after = extra = first = None
    t = 0
    while (limit is None or t < limit) and state not in seen:
        if len(seen) >= _MAX_STATES:
            state = _widen(step, state)
        seen.add(state)
        nxt, ext, outs = step(state, record)
        first = outs if first is None else first
        after = nxt if after is None else [join(p) for p in zip(after, nxt, strict=True)]
        extra = ext if extra is None else [join(p) for p in zip(extra, ext, strict=True)]
        state, t = tuple(nxt), t + 1
        if len(seen) > _MAX_STATES:
            break
    return after, extra, first


def _widen(step: Step, state: tuple[Mark, ...]) -> tuple[Mark, ...]:
    """The least fixpoint above ``state`` of joining in the body's next state."""
    while True:
        nxt, _, _ = step(state, False)
        joined = tuple(join(p) for p in zip(state, nxt, strict=True))
        if joined == state:
            return state
        state = joined


class _Loop:
    """Value numbers of one loop: symbolic carries, and the reuse checks of its body."""

    def __init__(self, flow: Flow, eqn: core.JaxprEqn, ins: Sequence[Val], init: Sequence[Val], where: str):
        self.flow = flow
        self.where = where
        """The user's source line that made the loop."""
        self.init = list(init)
        in_vns = tuple(v.vn for v in ins)
        self.key = flow.numbering.intern(("loop", id(eqn), in_vns), in_vns)
        # A carry symbol derives from the loop's inputs: in a loop nested in another, the inner
        # carry is a function of the outer iteration's key, not a constant of the outer loop.
        self.carry_symbols = [flow.numbering.intern(("carry", self.key, i), (self.key,)) for i in range(len(init))]
        self.symbols: set[int] = set()
        """Numbers that differ between iterations: changing carries and scanned slices."""
        self.invariant = [True] * len(init)

    def settle(self, first: list[Val] | None) -> None:
        """Carries the body passes through unchanged (from iteration 0's outputs) are invariant."""
        if first is not None:
            self.invariant = [first[i].vn == s for i, s in enumerate(self.carry_symbols)]
        self.symbols.update(s for s, inv in zip(self.carry_symbols, self.invariant, strict=True) if not inv)

    def check(self, body: Callable[[Sequence[int], Ledger], list[Val]], ledger: Ledger, *,
              repeats: bool) -> dict[int, Use]:
        """Runs the body once on the ledger and reports reuse across iterations.

        Returns, per carry, the use in the body of the key it passes to the next iteration.
        """
        vns = [v.vn if inv else s for v, s, inv in zip(self.init, self.carry_symbols, self.invariant, strict=True)]
        start = len(ledger.log)
        outs = body(vns, ledger)
        used: dict[int, Use] = {}
        for table, vn, use in ledger.log[start:]:
            if table == "uses":
                used.setdefault(vn, use)
        if repeats:
            for vn, use in used.items():
                if not self.flow.numbering.derives_from(vn, self.symbols):
                    ledger.report("loop-reuse", use, loop=self.where)
        passed_on: dict[int, Use] = {}
        for i, (symbol, inv) in enumerate(zip(self.carry_symbols, self.invariant, strict=True)):
            if inv:
                continue
            taken, passed = used.get(symbol), used.get(outs[i].vn)
            if repeats and taken is not None and passed is not None:
                ledger.report("loop-reuse", taken, passed, loop=self.where)
            if taken is not None:
                ledger.consume(self.init[i].vn, taken)  # iteration 0 consumes the initial key
            if passed is not None:
                passed_on[i] = passed
        return passed_on

    def outputs(self, carry: list[Mark], rest: list[Mark], passed_on: dict[int, Use],
                ledger: Ledger | None) -> list[Val]:
        """The loop's outputs: an unchanged carry keeps its number, others are new values."""
        numbering = self.flow.numbering
        outs = []
        for i, mark in enumerate(carry):
            vn = self.init[i].vn if self.invariant[i] else numbering.intern(("carry-out", self.key, i), (self.key,))
            if ledger is not None and i in passed_on:
                ledger.uses.setdefault(vn, passed_on[i])
            outs.append(Val(mark, vn))
        outs.extend(Val(mark, numbering.intern(("ys", self.key, j), (self.key,))) for j, mark in enumerate(rest))
        return outs
