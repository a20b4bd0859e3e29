"""keyfan's inlined Threefry hash, found in a jaxpr by its name scope.

keyfan computes its keys and bits with plain uint32 arithmetic (``keyfan.streams._threefry2x32``)
inside the name scope ``HASH_SCOPE``. The *outputs* of a hash are the values made inside the
scope and used outside it. Each output is either

* key data (``kf.at``, ``kf.named``, ``kf.step``, ``kf.fan_out``): it only moves (stack, reshape,
  select, ...) into a ``random_wrap``, into another hash, or out of the jaxpr; deriving it does
  not consume the parent key, as ``fold_in`` does not;
* random bits (``kf.normal`` and the other samplers): some arithmetic reads it; computing the
  same bits twice is using the same randomness twice.
"""

from __future__ import annotations

import weakref

from keyfan._jaxinternals import core
from keyfan._keyflow.source import in_scope
from keyfan.streams import HASH_SCOPE

__all__ = ["HASH_SCOPE", "hash_outputs"]

_MOVES = frozenset({
    "broadcast_in_dim", "concatenate", "convert_element_type", "copy", "copy_p", "dynamic_slice",
    "expand_dims", "gather", "reshape", "select_n", "slice", "squeeze", "stack", "transpose",
})
"""Primitives that move key words without computing on them."""

_CACHE: weakref.WeakKeyDictionary[core.Jaxpr, dict[core.Var, bool]] = weakref.WeakKeyDictionary()


def hash_outputs(jaxpr: core.Jaxpr) -> dict[core.Var, bool]:
    """The outputs of keyfan hashes in ``jaxpr``, each mapped to True if it is used as random
    bits (False: key data)."""
    try:
        found = _CACHE.get(jaxpr)
    except TypeError:  # not weakly referenceable: no cache
        return _hash_outputs(jaxpr)
    if found is None:
        found = _CACHE[jaxpr] = _hash_outputs(jaxpr)
    return found


def _scoped(eqn: core.JaxprEqn) -> bool:
    return in_scope(str(eqn.source_info.name_stack), HASH_SCOPE)


def _hash_outputs(jaxpr: core.Jaxpr) -> dict[core.Var, bool]:
    inside = {v for eqn in jaxpr.eqns if _scoped(eqn) for v in eqn.outvars}
    if not inside:
        return {}
    readers: dict[core.Var, list[core.JaxprEqn]] = {}
    for eqn in jaxpr.eqns:
        if not _scoped(eqn):
            for v in eqn.invars:
                if isinstance(v, core.Var):
                    readers.setdefault(v, []).append(eqn)
    outvars = {v for v in jaxpr.outvars if isinstance(v, core.Var)}
    return {v: _read_as_bits(v, readers) for v in inside if v in readers or v in outvars}


def _read_as_bits(var: core.Var, readers: dict[core.Var, list[core.JaxprEqn]]) -> bool:
    """True if some computation outside the hash scope reads ``var`` (through moves only)."""
    todo, seen = [var], set()
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        for eqn in readers.get(v, ()):
            name = eqn.primitive.name
            if name in _MOVES:
                todo.extend(eqn.outvars)
            elif name != "random_wrap":
                return True
    return False
