"""One member's optimizer update written into the stacked state in place, the same bits anywhere.

A loop over members that computes member ``m``'s new state (its parameters and optimizer state)
and then writes it into the stacked state holds the new state in buffers of its own first: for
Adam the new parameters and both moments, three member-sized buffers live at once (measured: 4
member-sized temporaries with the gradient, 1.85x the XLA temporaries of a hand-written
``jit(vmap(step))`` at MLP 784-2048-2048-10). :func:`written_in_place` evaluates the update's
jaxpr itself so that XLA computes each output leaf inside its in-place write:

* the member's arrays are read as a member axis of one (``dynamic_slice``, no reshape) and the
  update runs under ``jax.vmap`` over that axis: a read of the stacked array, the arithmetic and
  the write back then form one in-place fusion (XLA does not fuse a read into an in-place write
  of the same array through a reshape; the read then held a member-sized buffer of its own);
  scalar leaves (a step count, an injected learning rate) stay unbatched scalars, as in the plain
  update;
* each output leaf is written at ``m`` right after the equation that computes it, and later
  equations read it back at ``m + zero`` (``zero`` an opaque 0): XLA can neither recompute it
  inside a later consumer (which would read the OLD stacked moment while it is overwritten, and
  XLA then copies the whole stacked array, every member) nor fold the read into the write;
* every float product is rounded on its own before anything adds it (``_exact.rounded``): which
  multiply XLA's LLVM backend contracts with an add into an FMA depends on the fusion around it
  (measured: Adam's first moment came out one ulp apart when its read moved into the write's
  fusion), so without this the update's bits would depend on the arrangement of the loop (one
  member, a group of two, a loop or a plain call). Adds, subtractions, divisions and square
  roots are correctly rounded wherever XLA puts them.

The loop no longer runs the update as a conditional branch of its own (``_train._apart``): a
branch that writes into its operands makes XLA copy them (every member), and the rounding above
is what keeps the bits apart from the surroundings instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from keyfan._jaxinternals.core import Literal
from keyfan.ensemble._exact import CALLS, PRODUCTS, rounded

__all__ = ["written_in_place"]


def written_in_place(fn: Callable[..., Any], zero: jax.Array) -> Callable[..., Any]:
    """``fn(state, *args) -> (out, new_state)`` for ONE member's ``state``, as
    ``f(stacked, m, *args) -> (out, new_stacked)``: ``state`` is ``stacked``'s entry ``m`` (every
    leaf's leading axis) and ``new_stacked`` is ``stacked`` with entry ``m`` replaced by
    ``new_state`` leaf by leaf (``new_state`` must have ``stacked``'s tree structure), each leaf
    written as soon as it is computed and read back from the stacked array by later operations.
    ``m`` should be unsigned (or a Python int): a signed index is wrapped by a ``select`` per use,
    and XLA fuses a read into the in-place write only when both use the same index.

    ``zero`` is an int32 scalar equal to 0 whose value the compiler cannot know. Every float
    product of ``fn`` is rounded on its own (no FMA), so the bits are those of ``fn`` with its
    products rounded separately, whatever the surroundings."""

    def wrapped(stacked: Any, m: Any, *args: Any) -> Any:
        leaves, treedef = jax.tree.flatten(stacked)
        # Entry m as a member axis of one (a slice, no reshape): XLA computes the update in that
        # shape and fuses the read of an operand into its in-place write (a reshape between them
        # keeps it from fusing, and the read then holds a member-sized buffer of its own).
        # A scalar leaf (a step count, a learning rate) is read as a scalar and its operations stay
        # unbatched: they are then those of the plain update (XLA rewrites a division by a
        # broadcast scalar and one by a broadcast (1,) array differently).
        axes = [0 if a.ndim > 1 else None for a in leaves]
        state = jax.tree.unflatten(treedef, [jax.lax.dynamic_slice_in_dim(a, m, 1, 0) if axis == 0 else
                                             jax.lax.dynamic_index_in_dim(a, m, 0, keepdims=False)
                                             for a, axis in zip(leaves, axes, strict=True)])
        flat, in_tree = jax.tree.flatten((state, args))
        in_axes = (jax.tree.unflatten(treedef, axes), *[None] * len(args))

        def flat_fn(*a: Any) -> Any:
            member, rest = jax.tree.unflatten(in_tree, a)
            return jax.vmap(fn, in_axes=in_axes, axis_size=1)(member, *rest)

        closed, shapes = jax.make_jaxpr(flat_fn, return_shape=True)(*flat)
        out_leaves = len(jax.tree.leaves(shapes[0]))
        new_tree: Any = jax.tree.structure(shapes[1])
        if new_tree != treedef:
            raise ValueError(f"the update returned a state of structure {new_tree}, not the stacked state's {treedef}.")
        jaxpr = closed.jaxpr
        targets: dict[Any, list[int]] = {}
        for i, v in enumerate(jaxpr.outvars[out_leaves:]):
            if not isinstance(v, Literal):
                targets.setdefault(v, []).append(i)
        read_at = m + zero.astype(jnp.result_type(m))  # an index equal to m that XLA cannot fold

        def store(v: Any, value: Any) -> Any:
            for i in targets.get(v, ()):
                leaves[i] = jax.lax.dynamic_update_slice_in_dim(leaves[i], value, m, 0)
            if v in targets:
                return jax.lax.dynamic_slice_in_dim(leaves[targets[v][0]], read_at, 1, 0)
            return value

        env: dict[Any, Any] = dict(zip(jaxpr.constvars, closed.consts, strict=True))
        for v, a in zip(jaxpr.invars, flat, strict=True):
            env[v] = store(v, a)
        for eqn in jaxpr.eqns:
            outs = _bind(eqn, [v.val if isinstance(v, Literal) else env[v] for v in eqn.invars], zero)
            for v, o in zip(eqn.outvars, outs, strict=True):
                env[v] = store(v, o)
        for i, v in enumerate(jaxpr.outvars[out_leaves:]):
            if isinstance(v, Literal):  # a constant
                value = jnp.broadcast_to(jnp.asarray(v.val, leaves[i].dtype), (1, *leaves[i].shape[1:]))
                leaves[i] = jax.lax.dynamic_update_slice_in_dim(leaves[i], value, m, 0)
        out = [(v.val if isinstance(v, Literal) else env[v])[0] for v in jaxpr.outvars[:out_leaves]]
        return jax.tree.unflatten(jax.tree.structure(shapes[0]), out), jax.tree.unflatten(treedef, leaves)

    return wrapped


def _bind(eqn: Any, invals: list[Any], zero: jax.Array) -> list[Any]:
    """The outputs of one equation, a float product rounded on its own (``_exact.rounded``);
    an inner call is evaluated inline."""
    name = eqn.primitive.name
    if name in CALLS:
        inner = eqn.params[CALLS[name]]
        return _eval(inner.jaxpr, inner.consts, invals, zero)
    out = eqn.primitive.bind(*invals, **eqn.params)
    if name in PRODUCTS and jnp.issubdtype(eqn.outvars[0].aval.dtype, jnp.inexact):
        out = rounded(out, zero)
    return list(out) if eqn.primitive.multiple_results else [out]


def _eval(jaxpr: Any, consts: Any, args: list[Any], zero: jax.Array) -> list[Any]:
    env: dict[Any, Any] = dict(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        outs = _bind(eqn, [v.val if isinstance(v, Literal) else env[v] for v in eqn.invars], zero)
        env.update(zip(eqn.outvars, outs, strict=True))
    return [v.val if isinstance(v, Literal) else env[v] for v in jaxpr.outvars]
