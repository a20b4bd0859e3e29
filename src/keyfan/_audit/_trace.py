"""From ``audit``'s arguments to the jaxpr of one example, with vmap levels on its inputs.

``in_axes`` describes the vmaps the function will run under, outermost first:

* one level: ``in_axes`` exactly as ``jax.vmap`` takes it (an int or None for every positional
  argument, or a tuple of pytree prefixes, one per positional argument);
* nested vmaps: a ``list`` of such specs, outermost first: ``[(0, None), (0, 0)]`` is
  ``jax.vmap(jax.vmap(f, in_axes=(0, 0)), in_axes=(0, None))``;
* ``None``: no vmap at all (audit a whole batched program for key reuse).

Keyword arguments are mapped at every level, as ``jax.vmap`` maps them. Arrays and
``jax.ShapeDtypeStruct`` leaves are traced with their (per-example) shapes; anything else (Python
numbers, strings, modules) is passed to the function as a constant and must not be mapped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import jax

from keyfan._jaxinternals import core
from keyfan._jaxinternals.core import jit_static_argnums
from keyfan._keyflow.args import check_axes, leaf_names, parameter_names, positional_axes
from keyfan._keyflow.errors import SharedRandomnessError
from keyfan._keyflow.example import example_jaxpr, example_leaves, struct
from keyfan._keyflow.values import key_like

__all__ = ["AuditTraceError", "Level", "Traced", "parse_levels", "trace"]

TRACE_AXIS_SIZE = 2
"""Size given to named axes when tracing; only the shapes of collectives such as
``all_gather`` depend on it, never the analysis."""


@dataclasses.dataclass(frozen=True)
class Level:
    """One vmap around the function."""

    in_axes: Any
    axis_name: Hashable | None = None


@dataclasses.dataclass(frozen=True)
class Traced:
    """The jaxpr of one example and what each of its inputs is."""

    closed: core.ClosedJaxpr
    names: list[str]
    """How the user would name each jaxpr input, e.g. ``argument 'key' (position 1)``."""
    in_levels: list[frozenset[int]]
    """The levels each jaxpr input is mapped over."""
    keys: list[bool]
    """Whether each jaxpr input is a key (typed, or raw ``uint32[..., 2]`` data)."""
    levels: list[Level]
    function: str

    @property
    def axis_levels(self) -> dict[Hashable, frozenset[int]]:
        return {lv.axis_name: frozenset({i}) for i, lv in enumerate(self.levels) if lv.axis_name is not None}

    def level_label(self, index: int) -> str:
        """``"the mapped axis"``, ``"vmap level 1 ('chain')"`` and so on."""
        name = self.levels[index].axis_name
        named = f" {name!r}" if name is not None else ""
        if len(self.levels) == 1:
            return f"the mapped axis{named}"
        where = " (outermost)" if index == 0 else " (innermost)" if index == len(self.levels) - 1 else ""
        return f"vmap level {index}{where}" + (f" {named.strip()}" if named else "")


def parse_levels(in_axes: Any, axis_name: Any) -> list[Level]:
    """The vmap levels described by ``in_axes`` and ``axis_name``, outermost first."""
    if isinstance(in_axes, list):
        if not in_axes:
            raise ValueError("in_axes=[] describes no vmap; pass in_axes=None to audit a function that "
                             "is not mapped, or one in_axes spec per nested vmap level.")
        specs = [check_axes(f"in_axes[{i}]", spec) for i, spec in enumerate(in_axes)]
        if axis_name is None:
            names: list[Any] = [None] * len(specs)
        elif isinstance(axis_name, list) and len(axis_name) == len(specs):
            names = axis_name
        else:
            raise ValueError(
                f"in_axes gives {len(specs)} nested levels, so axis_name must be a list with one name "
                f"(or None) per level, outermost first; got axis_name={axis_name!r}."
            )
    else:
        if isinstance(axis_name, list):
            raise ValueError(
                f"axis_name={axis_name!r} is a list (one name per nested level) but in_axes={in_axes!r} "
                f"describes one level; pass a single name, or a list of in_axes specs."
            )
        if in_axes is None and axis_name is None:
            return []
        specs, names = [check_axes("in_axes", in_axes)], [axis_name]
    named = [n for n in names if n is not None]
    if len(set(named)) != len(named):
        raise ValueError(f"axis_name has a repeated name: {names!r}; each vmap level needs its own name.")
    return [Level(spec, name) for spec, name in zip(specs, names, strict=True)]


def _leaf_levels(f: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any],
                 levels: Sequence[Level]) -> tuple[list[str], list[frozenset[int]]]:
    """Every leaf of ``(args, kwargs)`` (flattened as a whole), named, with its mapped levels."""
    params = parameter_names(f)
    names = leaf_names(params, args, kwargs)
    mapped: list[set[int]] = [set() for _ in names]
    n_positional = len(names) - len(jax.tree_util.tree_leaves(kwargs))
    for index, level in enumerate(levels):
        spec = level.in_axes
        if isinstance(spec, tuple) and len(spec) != len(args):
            raise ValueError(
                f"in_axes{'' if len(levels) == 1 else f'[{index}]'}={spec!r} has {len(spec)} entries but "
                f"{len(args)} positional example arguments were given; give one entry per positional "
                f"argument (keyword arguments are mapped at every level, as in jax.vmap)."
            )
        axes = positional_axes(params, spec, args)
        axes.extend([0] * (len(names) - n_positional))
        for leaf, axis in enumerate(axes):
            if axis is not None:
                mapped[leaf].add(index)
    return names, [frozenset(m) for m in mapped]


class AuditTraceError(ValueError):
    """``keyfan.audit`` could not trace the function on the example arguments.

    The message lists the arguments as traced (dtype and per-example shape) and how the audit
    reads them; ``__cause__`` is the original error.

    Examples:
      >>> import jax.numpy as jnp, keyfan as kf
      >>> def needs_a_number(x, n):
      ...     return x * int(n)            # a concrete value, which tracing cannot give
      >>> try:
      ...     kf.audit(needs_a_number, jnp.zeros(3), jnp.array(2.0), in_axes=None)
      ... except kf.AuditTraceError as err:
      ...     print(isinstance(err, ValueError), type(err.__cause__).__name__)
      True ConcretizationTypeError
    """


class Reading(NamedTuple):
    """How a jit wrapper reads a call's arguments: which leaves it traces."""

    name: str
    static_argnums: tuple[int, ...] | None
    """As in ``jax.jit``; None: bare Python number arguments are constants."""
    trace_numbers: bool
    """False: Python numbers inside pytrees are constants, as ``eqx.filter_jit`` keeps them."""


JIT = Reading("jax.jit", None, True)
FILTER_JIT = Reading("eqx.filter_jit", None, False)


def own_reading(f: Callable[..., Any]) -> Reading:
    """The reading of ``f``'s own jit wrapper: ``eqx.filter_jit`` (arrays traced, everything
    else static), ``jax.jit`` (its ``static_argnums``), ``nnx.jit`` or none (``jax.jit``'s)."""
    module = type(f).__module__ or ""
    if module.startswith("equinox"):
        return FILTER_JIT
    static = jit_static_argnums(f)
    return JIT if static is None else Reading("jax.jit", static, True)


def trace(f: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any], levels: Sequence[Level], *,
          static_argnums: Sequence[int] | None = None) -> Traced:
    """Traces one example of ``f`` and marks each traced input with its levels.

    Leaves are read as ``f``'s own jit wrapper reads them (:func:`own_reading`), or exactly as
    ``jax.jit`` with ``static_argnums`` when the caller gives them. If that trace fails, the other
    readings (``jax.jit``'s, ``eqx.filter_jit``'s) are tried before the first failure is raised:
    an Equinox module's ``Dropout(p=0.3)`` must stay a Python float where optax multiplies it.
    """
    names, leaf_levels = _leaf_levels(f, args, kwargs, levels)
    if static_argnums is not None:
        readings = [Reading("static_argnums", tuple(static_argnums), True)]
    else:
        first = own_reading(f)
        readings = [first, *(r for r in (JIT, FILTER_JIT) if r != first)]
    failure: AuditTraceError | None = None
    for reading in readings:
        try:
            return _trace(f, args, kwargs, levels, names, list(leaf_levels), reading.static_argnums,
                          trace_numbers=reading.trace_numbers)
        except AuditTraceError as err:
            failure = failure or err
    assert failure is not None
    raise failure


def _trace(f: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any], levels: Sequence[Level],
           names: list[str], leaf_levels: list[frozenset[int]], static_argnums: Sequence[int] | None, *,
           trace_numbers: bool) -> Traced:
    example = example_leaves(args, kwargs, static_argnums=static_argnums, trace_numbers=trace_numbers)
    values, dynamic = example.values, set(example.dynamic)
    for i, value in enumerate(values):
        if i not in dynamic and leaf_levels[i] and names[i].startswith("keyword"):
            leaf_levels[i] = frozenset()  # a static keyword value is passed as is, like a partial
        elif i not in dynamic and leaf_levels[i]:
            raise ValueError(
                f"in_axes maps {names[i]}, but it is a {type(value).__name__} ({value!r}), which audit "
                f"passes to the function as a constant: only arrays, jax.ShapeDtypeStruct and numbers "
                f"inside pytrees can be mapped. Use None for it in in_axes, or pass an array."
            )
    for index, level in enumerate(levels):
        if level.axis_name is None and not any(index in leaf_levels[i] for i in dynamic):
            raise ValueError(
                f"in_axes{'' if len(levels) == 1 else f'[{index}]'}={level.in_axes!r} maps no array "
                f"argument, and the level has no axis_name, so nothing varies over it. Map at least one "
                f"argument; pass in_axes=None to audit a function without vmap (a list of in_axes is "
                f"read as nested levels, outermost first)."
            )
    function = getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or type(f).__name__
    structs = [struct(values[i]) for i in example.dynamic]
    env = [(lv.axis_name, TRACE_AXIS_SIZE) for lv in levels if lv.axis_name is not None]
    try:
        closed = example_jaxpr(f, example, structs, axis_env=env)
    except SharedRandomnessError:
        raise
    except Exception as err:
        shapes = ", ".join(f"{names[i]}: {_describe(s)}" for i, s in zip(example.dynamic, structs, strict=True))
        raise AuditTraceError(
            f"keyfan.audit could not trace {function} on one example ({shapes or 'no array arguments'}): "
            f"{type(err).__name__}: {err}. audit traces the way jax.jit does (arrays and numbers inside "
            f"pytrees are abstract; bare number arguments are constants unless static_argnums= is given); "
            f"if {function} needs a concrete value there, pass it as a constant (static_argnums=), and if "
            f"it uses axis_index or collectives, pass axis_name= for each vmap level."
        ) from err
    return Traced(closed, [names[i] for i in example.dynamic], [leaf_levels[i] for i in example.dynamic],
                  [key_like(s) for s in structs], list(levels), function)


def _describe(s: jax.ShapeDtypeStruct) -> str:
    return f"{s.dtype}{list(s.shape)}" + (" (weak)" if s.weak_type else "")
