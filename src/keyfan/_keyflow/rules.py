"""The rule of every primitive that is not plain data dependence: one table, ``RULES``.

A rule takes the engine, the equation and its input values, and returns its output values,
recording draws and key uses on the way. Everything else goes through ``Flow.default`` (the
outputs depend on all inputs) or, for equations with sub-jaxprs, through the engine's call rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from keyfan._jaxinternals import core
from keyfan._keyflow import loops as _loops
from keyfan._keyflow.primitives import DRAWS, keys_of
from keyfan._keyflow.values import Mark, Numbering, Val, join

if TYPE_CHECKING:
    from keyfan._keyflow.flow import Ctx, Flow

__all__ = ["RULES", "makes_copies", "size"]

_KEEPS_COPIES = frozenset({"reshape", "squeeze", "expand_dims", "transpose", "convert_element_type"})

Rule = Callable[["Flow", core.JaxprEqn, list[Val], "Ctx"], list[Val]]


def size(atom: Any) -> int:
    """Number of elements of a jaxpr variable or literal."""
    return math.prod(getattr(atom.aval, "shape", ()))


def axis_names(params: dict[str, Any], *fields: str) -> tuple[Any, ...]:
    """The axis names in the first of ``fields`` present in an equation's params."""
    for field in fields:
        if field in params:
            value = params[field]
            return tuple(value) if isinstance(value, (tuple, list)) else (value,)
    return ()


def makes_copies(eqn: core.JaxprEqn, ins: Sequence[Val], numbering: Numbering) -> bool:
    """True if ``eqn`` makes an array of copies (a broadcast or tiled key, say)."""
    name = eqn.primitive.name
    copied = [v.vn in numbering.copies for v in ins]
    if name in ("broadcast_in_dim", "tile"):
        return copied[0] or size(eqn.outvars[0]) > size(eqn.invars[0])
    if name in ("concatenate", "stack"):
        vns = [v.vn for v in ins]
        return any(copied) or len(set(vns)) < len(vns)
    return name in _KEEPS_COPIES and bool(copied) and copied[0]


def _key_draw(flow: Flow, eqn: core.JaxprEqn, ins: list[Val], ctx: Ctx) -> list[Val]:
    """``random_bits``, ``random_gamma``: a draw that consumes its key operand."""
    did = flow.draw(eqn, 0, join(ins[i].mark for i in keys_of(eqn.primitive.name, len(ins))), ctx)
    counters = math.prod(eqn.params["shape"]) if eqn.primitive.name == "random_bits" else None
    flow.consume(eqn, ins[0], "draw", ctx, count=counters, draw=did)
    mark = join(v.mark for v in ins)
    return flow.default(eqn, ins, mark=mark._replace(draws=mark.draws | {did}))


def _hash_primitive(flow: Flow, eqn: core.JaxprEqn, ins: list[Val], ctx: Ctx) -> list[Val]:
    """JAX's ``threefry2x32``: a draw from all its operands."""
    mark = join(v.mark for v in ins)
    did = flow.draw(eqn, 0, mark, ctx)
    return flow.default(eqn, ins, mark=mark._replace(draws=mark.draws | {did}))


def _split(flow: Flow, eqn: core.JaxprEqn, ins: list[Val], ctx: Ctx) -> list[Val]:
    outs = flow.default(eqn, ins)
    flow.consume(eqn, ins[0], "split", ctx, outs, count=math.prod(eqn.params["shape"]))
    return outs


def _fold_in(flow: Flow, eqn: core.JaxprEqn, ins: list[Val], ctx: Ctx) -> list[Val]:
    outs = flow.default(eqn, ins)
    if ctx.ledger is not None:
        data = eqn.invars[1]
        constant = int(data.val) if isinstance(data, core.Literal) and size(data) == 1 else None
        ctx.ledger.fold(outs[0].vn, flow.use(eqn, "fold_in", ctx, data=constant), parent=ins[0].vn)
    return outs


def _forward(flow: Flow, eqn: core.JaxprEqn, ins: list[Val], ctx: Ctx) -> list[Val]:
    """Identity on values: a raw key and its wrapped key are one key."""
    if len(ins) != len(eqn.outvars):
        return flow.default(eqn, ins)
    return list(ins)


def _axis_index(flow: Flow, eqn: core.JaxprEqn, ins: list[Val], ctx: Ctx) -> list[Val]:
    names = axis_names(eqn.params, "axis_name")
    levels = frozenset().union(*(flow.axis_levels.get(n, frozenset()) for n in names))
    return flow.default(eqn, ins, mark=Mark(levels=levels))


def _collective(flow: Flow, eqn: core.JaxprEqn, ins: list[Val], ctx: Ctx) -> list[Val]:
    """``psum`` and friends: the result is the same for every example along the reduced axes."""
    names = axis_names(eqn.params, "axes", "axis_name")
    reduced = frozenset().union(*(flow.axis_levels.get(n, frozenset()) for n in names))
    mark = join(v.mark for v in ins)
    return flow.default(eqn, ins, mark=mark._replace(levels=mark.levels - reduced))


RULES: dict[str, Rule] = {
    **{name: _key_draw if draw.keyed_by is not None else _hash_primitive for name, draw in DRAWS.items()},
    "random_split": _split,
    "random_fold_in": _fold_in,
    "random_wrap": _forward,
    "random_unwrap": _forward,
    "copy": _forward,
    "copy_p": _forward,
    "device_put": _forward,
    "optimization_barrier": _forward,
    "axis_index": _axis_index,
    "psum": _collective,
    "pmax": _collective,
    "pmin": _collective,
    "all_gather": _collective,
    "cond": _loops.cond,
    "scan": _loops.scan,
    "while": _loops.while_loop,
}
"""The rule of every primitive that is not plain data dependence."""
