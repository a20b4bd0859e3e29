"""One member's update written into the stacked state as it is computed: no member-sized outputs.

A loop over members that computes member ``m``'s new state (its parameters and optimizer state)
and then writes it into the stacked state holds the new state in buffers of its own first: the
optimizer's outputs (for Adam the new parameters and both moments, three member-sized buffers)
are live together before the writes. Writing each output as soon as it is computed does not help
by itself: XLA recomputes a cheap output inside a later consumer (Adam's new first moment inside
the parameter update), which then reads the OLD stacked moments while the moment is updated in
place, and XLA copies the whole stacked moment (every member) to keep the old one.

:func:`written_in_place` evaluates the update's jaxpr itself: after the equation that computes an
output leaf, it writes the leaf into its stacked array at ``m`` (``dynamic_update_slice``, in
place) and every later equation reads it back from there at ``m + zero`` with ``zero`` an opaque
0, so that XLA can neither recompute it in the consumer nor fold the read into the written value.
Each value is computed by the same operations as in the plain update, every output read from
memory as before (an output is stored either way), so the bits are those of the plain update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from keyfan._jaxinternals.core import Literal
from keyfan.ensemble._exact import _CALLS

__all__ = ["written_in_place"]


def written_in_place(fn: Callable[..., Any], zero: jax.Array) -> Callable[..., Any]:
    """``fn(state, *args) -> (out, new_state)`` for ONE member's ``state``, as
    ``f(stacked, m, *args) -> (out, new_stacked)``: ``state`` is ``stacked``'s entry ``m`` (every
    leaf's leading axis) and ``new_stacked`` is ``stacked`` with entry ``m`` replaced by
    ``new_state`` leaf by leaf (``new_state`` must have ``stacked``'s tree structure), each leaf
    written as soon as it is computed and read back from the stacked array by later operations.

    ``zero`` is an int32 scalar equal to 0 whose value the compiler cannot know."""

    def wrapped(stacked: Any, m: Any, *args: Any) -> Any:
        leaves, treedef = jax.tree.flatten(stacked)
        state = jax.tree.unflatten(treedef, [a[m] for a in leaves])
        flat, in_tree = jax.tree.flatten((state, args))
        def flat_fn(*a: Any) -> Any:
            member, rest = jax.tree.unflatten(in_tree, a)
            return fn(member, *rest)

        closed, shapes = jax.make_jaxpr(flat_fn, return_shape=True)(*flat)
        out_leaves = len(jax.tree.leaves(shapes[0]))
        if jax.tree.structure(shapes[1]) != treedef:
            raise ValueError(f"the update returned a state of structure {jax.tree.structure(shapes[1])}, "
                             f"not the stacked state's {treedef}.")
        jaxpr = closed.jaxpr
        targets: dict[Any, list[int]] = {}
        for i, v in enumerate(jaxpr.outvars[out_leaves:]):
            if not isinstance(v, Literal):
                targets.setdefault(v, []).append(i)
        written: set[int] = set()
        read_at = m + zero.astype(jax.numpy.result_type(m))

        def store(v: Any, value: Any) -> Any:
            for i in targets.get(v, ()):
                leaves[i] = jax.lax.dynamic_update_index_in_dim(leaves[i], value, m, 0)
                written.add(i)
            if v in targets:
                return jax.lax.dynamic_index_in_dim(leaves[targets[v][0]], read_at, 0, keepdims=False)
            return value

        env: dict[Any, Any] = {}
        for v, a in zip(jaxpr.constvars, closed.consts, strict=True):
            env[v] = a
        for v, a in zip(jaxpr.invars, flat, strict=True):
            env[v] = store(v, a) if v in targets else a
        for eqn in jaxpr.eqns:
            invals = [v.val if isinstance(v, Literal) else env[v] for v in eqn.invars]
            outs = _bind(eqn, invals)
            for v, o in zip(eqn.outvars, outs, strict=True):
                env[v] = store(v, o)
        for i, v in enumerate(jaxpr.outvars[out_leaves:]):
            if i not in written:  # a constant
                leaves[i] = jax.lax.dynamic_update_index_in_dim(leaves[i], v.val, m, 0)
        out = [v.val if isinstance(v, Literal) else env[v] for v in jaxpr.outvars[:out_leaves]]
        return jax.tree.unflatten(jax.tree.structure(shapes[0]), out), jax.tree.unflatten(treedef, leaves)

    return wrapped


def _bind(eqn: Any, invals: list[Any]) -> list[Any]:
    """The outputs of one equation; an inner call is evaluated inline."""
    name = eqn.primitive.name
    if name in _CALLS:
        inner = eqn.params[_CALLS[name]]
        return _eval(inner.jaxpr, inner.consts, invals)
    out = eqn.primitive.bind(*invals, **eqn.params)
    return list(out) if eqn.primitive.multiple_results else [out]


def _eval(jaxpr: Any, consts: Any, args: list[Any]) -> list[Any]:
    env: dict[Any, Any] = dict(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        outs = _bind(eqn, [v.val if isinstance(v, Literal) else env[v] for v in eqn.invars])
        env.update(zip(eqn.outvars, outs, strict=True))
    return [v.val if isinstance(v, Literal) else env[v] for v in jaxpr.outvars]
