"""The jaxpr of ONE example of a function: what ``kf.audit`` and ``kf.vmap`` both analyse.

Arguments are read the way ``jax.jit`` (and ``eqx.filter_jit``) reads them:

* arrays, NumPy scalars and ``jax.ShapeDtypeStruct`` leaves are traced with their shapes;
* Python numbers (``bool``, ``int``, ``float``, ``complex``) inside an argument's pytree are
  traced as weakly typed scalars, as ``jit`` traces them (a fresh ``TrainState`` has ``step=0``),
  or kept constant, as ``eqx.filter_jit`` keeps them (an Equinox ``Dropout`` holds ``p=0.5``
  and branches on it), when the caller asks (``trace_numbers=False``);
  a Python number that IS a whole positional argument (a flag such as ``train=True``) is a
  constant unless the caller asks for it to be traced;
* anything else (strings, functions, modules that are not pytrees) is passed as a constant.

Outputs keep their array leaves only, as ``eqx.filter_jit`` returns non-array leaves as they are:
a train step may return a model that holds ``jax.nn.relu``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from keyfan._jaxinternals import core

__all__ = ["Example", "example_jaxpr", "example_leaves", "is_array", "struct"]

_NUMBERS = (bool, int, float, complex)


def is_array(value: Any) -> bool:
    """An array leaf: a JAX or NumPy array, a NumPy scalar or a ``jax.ShapeDtypeStruct``."""
    return isinstance(value, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct))


def struct(value: Any) -> jax.ShapeDtypeStruct:
    """The abstract value of a traced leaf (weakly typed for a Python number, as in ``jit``)."""
    if isinstance(value, jax.ShapeDtypeStruct):
        return value
    aval = jax.typeof(value)
    return jax.ShapeDtypeStruct(aval.shape, aval.dtype, weak_type=aval.weak_type)  # type: ignore[no-untyped-call]


@dataclasses.dataclass(frozen=True)
class Example:
    """A call flattened into traced leaves and constants."""

    values: list[Any]
    """Every leaf of ``(args, kwargs)``, flattened as a whole."""
    treedef: Any
    dynamic: list[int]
    """Indices of the leaves that are traced."""


def example_leaves(args: Sequence[Any], kwargs: dict[str, Any], *,
                   static_argnums: Sequence[int] | None = None, trace_numbers: bool = True) -> Example:
    """Which leaves of a call are traced.

    Args:
      args, kwargs: one example's arguments.
      static_argnums: as in ``jax.jit``: the positional arguments passed as constants, every
        other leaf (Python numbers included) being traced. None (the default): every positional
        argument that is a bare Python number is a constant, as flags such as ``train=True``
        usually are, and everything else is read as ``jit`` reads it.
      trace_numbers: False to keep Python numbers inside pytrees constant, as
        ``eqx.filter_jit`` keeps every non-array leaf.
    """
    values, treedef = jax.tree_util.tree_flatten((tuple(args), kwargs))
    starts = [len(jax.tree_util.tree_leaves(args[:i])) for i in range(len(args) + 1)]
    if static_argnums is None:
        static_positions = {i for i, a in enumerate(args) if isinstance(a, _NUMBERS)}
    else:
        static_positions = {p % len(args) for p in static_argnums} if args else set()
    static = {leaf for p in static_positions for leaf in range(starts[p], starts[p + 1])}
    dynamic = [i for i, v in enumerate(values)
               if i not in static and (is_array(v) or (trace_numbers and isinstance(v, _NUMBERS)))]
    return Example(values, treedef, dynamic)


def _array_outputs(out: Any) -> list[Any]:
    return [leaf for leaf in jax.tree_util.tree_leaves(out) if isinstance(leaf, (jax.Array, *_NUMBERS))]


def example_jaxpr(f: Callable[..., Any], example: Example, structs: Sequence[jax.ShapeDtypeStruct], *,
                  axis_env: Sequence[tuple[Any, int]] | None = None) -> core.ClosedJaxpr:
    """The closed jaxpr of ``f`` on one example, its inputs the traced leaves (``structs``, one
    per ``example.dynamic``), its outputs the array leaves of ``f``'s result."""

    def one_example(*leaves: Any) -> list[Any]:
        filled = list(example.values)
        for i, leaf in zip(example.dynamic, leaves, strict=True):
            filled[i] = leaf
        call_args, call_kwargs = jax.tree_util.tree_unflatten(example.treedef, filled)
        return _array_outputs(f(*call_args, **call_kwargs))

    return jax.make_jaxpr(one_example, axis_env=list(axis_env) if axis_env else None)(*structs)

