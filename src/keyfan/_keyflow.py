"""Key flow: which random draws of a traced function are the same for every example of a batch.

Given the jaxpr of ONE example (``jax.make_jaxpr`` on per-example abstract values) and, for each
input, whether it is mapped over the batch, :func:`draws` lists every random draw with

* ``sources``: the inputs its key derives from (data dependence, through any primitive), and
* ``varying``: whether its key depends on a mapped input, i.e. differs between examples.

A draw that does not vary is shared by the whole batch: the broadcast-key bug when it was not
meant (``kf.vmap(..., randomness="error")`` raises on it), intended sharing when it is traced
inside ``kf.shared_randomness()`` (its ``name_stack`` says so).

What counts as a draw:

* ``random_bits`` and ``random_gamma``: varying iff their key operand varies;
* a Threefry hash, either JAX's ``threefry2x32`` primitive or keyfan's own inlined hash (marked
  by the name scope :data:`keyfan.streams._threefry2x32.HASH_SCOPE`): varying iff any input
  varies, since hashing a per-example counter (``kf.at(key, i)``) gives per-example values.

``random_split``, ``random_fold_in``, ``random_wrap``/``random_unwrap`` and all arithmetic pass
dependence through. ``axis_index`` of a batch axis varies. Sub-jaxprs are followed: calls
(``jit``, ``closed_call``, ``remat``, ``custom_jvp_call``, ``custom_vjp_call``, ``shard_map``) map
inputs to inputs; ``cond`` joins its branches (a varying predicate makes every output vary);
``scan`` and ``while`` iterate their carry to a fixed point. Any other primitive with sub-jaxprs
is handled conservatively (every input reaches every output and every sub-jaxpr input). The
analysis over-approximates "varying" (a value computed from mapped data counts as per-example
even if it happens to be constant), so a reported shared draw is shared.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence

import jax
from jax.extend import core

from keyfan.streams._threefry2x32 import HASH_SCOPE

__all__ = ["Draw", "draws", "in_scope"]

State = tuple[frozenset[int], bool]
"""Per value: the input indices it derives from, and whether it varies over the batch."""

_EMPTY: State = (frozenset(), False)
_KEY_DRAWS = frozenset({"random_bits", "random_gamma"})
_HASHES = frozenset({"threefry2x32"})
_CALL_PARAMS = ("jaxpr", "call_jaxpr", "fun_jaxpr")
_INTERNAL_DIRS = (
    os.path.dirname(os.path.dirname(jax.__file__)) + os.sep + "jax" + os.sep,
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
    os.path.dirname(os.__file__) + os.sep,
)


@dataclasses.dataclass(frozen=True)
class Draw:
    """One random draw found in a jaxpr."""

    primitive: str
    """``"random_bits"``, ``"random_gamma"``, ``"threefry2x32"`` or ``HASH_SCOPE``."""
    sources: frozenset[int]
    """Indices of the jaxpr inputs the draw's key derives from (empty: a constant key)."""
    varying: bool
    """True if the key depends on a mapped input, so each example draws differently."""
    name_stack: str
    """The full name stack of the draw (scopes of enclosing calls included)."""
    location: str
    """``file:line (function)`` of the innermost frame outside JAX and keyfan, or ``""``."""


def in_scope(name_stack: str, scope: str) -> bool:
    """True if ``scope`` is a component of ``name_stack``, also inside transform wrappers such
    as ``jvp(scope)`` or ``transpose(jvp(scope))``."""
    return re.search(rf"(?:^|[/(]){re.escape(scope)}(?:$|[/)])", name_stack) is not None


def draws(jaxpr: core.ClosedJaxpr, varying: Sequence[bool], *,
          axis_names: Sequence[object] = ()) -> list[Draw]:
    """Every random draw of ``jaxpr``, with the inputs its key derives from.

    Args:
      jaxpr: the closed jaxpr of one example.
      varying: one flag per input of ``jaxpr``: True for inputs mapped over the batch.
      axis_names: names of the batch axes, whose ``axis_index`` varies per example.

    Returns:
      The draws in program order, without duplicates.
    """
    if len(varying) != len(jaxpr.jaxpr.invars):
        raise ValueError(f"varying has {len(varying)} flags for {len(jaxpr.jaxpr.invars)} inputs.")
    flow = _Flow(frozenset(axis_names))
    states = [(frozenset({i}), bool(v)) for i, v in enumerate(varying)]
    flow.run(jaxpr.jaxpr, [_EMPTY] * len(jaxpr.jaxpr.constvars), states, "", "", record=True)
    return list(flow.found)


def _join(states: Sequence[State]) -> State:
    sources: frozenset[int] = frozenset().union(*(s[0] for s in states))
    return sources, any(s[1] for s in states)


def _join_pairs(a: Sequence[State], b: Sequence[State]) -> list[State]:
    return [_join((x, y)) for x, y in zip(a, b, strict=True)]


def _location(eqn: core.JaxprEqn, outer: str) -> str:
    """The user's frame that made ``eqn``; ``outer`` (the enclosing call's) when the traceback
    stops at a ``jit`` boundary."""
    traceback = getattr(eqn.source_info, "traceback", None)
    for frame in getattr(traceback, "frames", ()):
        if not frame.file_name.startswith(_INTERNAL_DIRS):
            return f"{frame.file_name}:{frame.line_num} ({frame.function_name})"
    return outer


def _sub_jaxpr(value: object) -> tuple[core.Jaxpr, int] | None:
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
            sub = _sub_jaxpr(item)
            if sub is not None:
                found.append(sub)
    return found


class _Flow:
    """One pass of the analysis over a jaxpr and, recursively, its sub-jaxprs."""

    def __init__(self, axis_names: frozenset[object]):
        self.axis_names = axis_names
        self.found: dict[Draw, None] = {}

    def run(self, jaxpr: core.Jaxpr, consts: Sequence[State], inputs: Sequence[State],
            stack: str, where: str, *, record: bool) -> list[State]:
        env: dict[object, State] = {}

        def read(var: object) -> State:
            return _EMPTY if isinstance(var, core.Literal) else env.get(var, _EMPTY)

        env.update(zip(jaxpr.constvars, consts, strict=True))
        env.update(zip(jaxpr.invars, inputs, strict=True))
        hash_outputs = self._hash_outputs(jaxpr) if record else set()
        for eqn in jaxpr.eqns:
            own = str(eqn.source_info.name_stack)
            full = f"{stack}/{own}" if stack and own else stack or own
            ins = [read(v) for v in eqn.invars]
            outs = self._eqn(eqn, ins, full, where, record)
            env.update(zip(eqn.outvars, outs, strict=True))
            if record:
                for var, state in zip(eqn.outvars, outs, strict=True):
                    if id(var) in hash_outputs:
                        self._record(HASH_SCOPE, state, full, _location(eqn, where))
        return [read(v) for v in jaxpr.outvars]

    @staticmethod
    def _hash_outputs(jaxpr: core.Jaxpr) -> set[int]:
        """Outputs of keyfan's inlined hash: values made inside its scope and used outside."""
        inside = {id(v) for eqn in jaxpr.eqns if in_scope(str(eqn.source_info.name_stack), HASH_SCOPE)
                  for v in eqn.outvars}
        if not inside:
            return set()
        used_outside = {id(v) for v in jaxpr.outvars}
        for eqn in jaxpr.eqns:
            if not in_scope(str(eqn.source_info.name_stack), HASH_SCOPE):
                used_outside.update(id(v) for v in eqn.invars)
        return inside & used_outside

    def _record(self, primitive: str, state: State, stack: str, where: str) -> None:
        self.found.setdefault(Draw(primitive, state[0], state[1], stack, where))

    def _eqn(self, eqn: core.JaxprEqn, ins: list[State], stack: str, outer: str,
             record: bool) -> list[State]:
        name = eqn.primitive.name
        n_out = len(eqn.outvars)
        if name in _KEY_DRAWS:
            if record:
                self._record(name, ins[0], stack, _location(eqn, outer))
            return [_join(ins)] * n_out
        if name in _HASHES:
            if record:
                self._record(name, _join(ins), stack, _location(eqn, outer))
            return [_join(ins)] * n_out
        if name == "axis_index":
            names = eqn.params.get("axis_name")
            names = names if isinstance(names, tuple) else (names,)
            return [(frozenset(), any(n in self.axis_names for n in names))] * n_out
        subs = _sub_jaxprs(eqn.params)
        if not subs:
            return [_join(ins)] * n_out
        where = _location(eqn, outer) if record else outer
        if name == "cond":
            return self._cond(eqn, ins, stack, where, record)
        if name == "scan":
            return self._scan(eqn, ins, stack, where, record)
        if name == "while":
            return self._while(eqn, ins, stack, where, record)
        call = next((_sub_jaxpr(eqn.params[p]) for p in _CALL_PARAMS if p in eqn.params), None)
        if len(subs) == 1 and call is not None and len(call[0].invars) == len(ins) \
                and len(call[0].outvars) == n_out:
            jaxpr, n_consts = call
            return self.run(jaxpr, [_EMPTY] * n_consts, ins, stack, where, record=record)
        joined = _join(ins)
        for jaxpr, n_consts in subs:
            self.run(jaxpr, [_EMPTY] * n_consts, [joined] * len(jaxpr.invars), stack, where, record=record)
        return [joined] * n_out

    def _closed(self, closed: core.ClosedJaxpr, ins: Sequence[State], stack: str, where: str,
                record: bool) -> list[State]:
        consts = [_EMPTY] * len(closed.jaxpr.constvars)
        return self.run(closed.jaxpr, consts, ins, stack, where, record=record)

    def _cond(self, eqn: core.JaxprEqn, ins: list[State], stack: str, where: str,
              record: bool) -> list[State]:
        index, operands = ins[0], ins[1:]
        outs = [index] * len(eqn.outvars)
        for branch in eqn.params["branches"]:
            outs = _join_pairs(outs, self._closed(branch, operands, stack, where, record))
        return outs

    def _scan(self, eqn: core.JaxprEqn, ins: list[State], stack: str, where: str,
              record: bool) -> list[State]:
        n_consts, n_carry = eqn.params["num_consts"], eqn.params["num_carry"]
        consts, carry, xs = ins[:n_consts], ins[n_consts:n_consts + n_carry], ins[n_consts + n_carry:]
        body = eqn.params["jaxpr"]
        while True:
            outs = self._closed(body, [*consts, *carry, *xs], stack, where, False)
            joined = _join_pairs(carry, outs[:n_carry])
            if joined == carry:
                break
            carry = joined
        if record:
            outs = self._closed(body, [*consts, *carry, *xs], stack, where, True)
        return [*carry, *outs[n_carry:]]

    def _while(self, eqn: core.JaxprEqn, ins: list[State], stack: str, where: str,
               record: bool) -> list[State]:
        n_cond, n_body = eqn.params["cond_nconsts"], eqn.params["body_nconsts"]
        cond_consts, body_consts = ins[:n_cond], ins[n_cond:n_cond + n_body]
        carry = ins[n_cond + n_body:]
        cond, body = eqn.params["cond_jaxpr"], eqn.params["body_jaxpr"]
        while True:
            (predicate,) = self._closed(cond, [*cond_consts, *carry], stack, where, False)
            outs = self._closed(body, [*body_consts, *carry], stack, where, False)
            joined = [_join((c, o, predicate)) for c, o in zip(carry, outs, strict=True)]
            if joined == carry:
                break
            carry = joined
        if record:
            self._closed(cond, [*cond_consts, *carry], stack, where, True)
            self._closed(body, [*body_consts, *carry], stack, where, True)
        return carry
