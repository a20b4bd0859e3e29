"""The arguments of one ``kf.vmap`` call, flattened: each leaf with its name, axis and key kind.

``in_axes`` is resolved against the call exactly as ``jax.vmap`` resolves it (an int or None for
every positional argument, or a tuple with one pytree prefix per positional argument; keyword
arguments are mapped over axis 0), with one extension: a keyword argument that is a single typed
key, which ``jax.vmap`` cannot map, is unmapped. Every mistake is reported with the argument's
name before JAX sees it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.tree_util import PyTreeDef, keystr

from keyfan._checks import as_int, is_typed_key

__all__ = ["Bound", "Leaf", "arg_name", "bind", "check_axes", "check_key_argnums", "leaf_axes", "leaf_names",
           "parameter_names", "positional_axes"]


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One leaf of the call's arguments."""

    name: str
    """How the user would write it, e.g. ``argument 'batch' ['x']`` or ``argument 1``."""
    axis: int | None
    """The mapped axis (non-negative), or None."""
    key: str | None
    """``"typed"``, ``"raw"`` (named by ``key_argnums``) or None (not a key)."""


@dataclasses.dataclass(frozen=True)
class Bound:
    """The flattened call: ``tree_unflatten(treedef, values) == (args, kwargs)``."""

    treedef: PyTreeDef
    values: list[Any]
    leaves: list[Leaf]
    size: int


def check_axes(name: str, axes: Any) -> Any:
    """``in_axes`` or ``out_axes`` as ``jax.vmap`` takes them (a list becomes a tuple), or raises."""
    if isinstance(axes, list):
        axes = tuple(axes)
    bad = [a for a in jax.tree_util.tree_leaves(axes) if not isinstance(a, int) or isinstance(a, bool)]
    top_ok = name == "out_axes" or axes is None or isinstance(axes, (int, tuple))
    if bad or not top_ok:
        raise TypeError(
            f"{name} must be an int, None, or a tuple (one entry per positional argument) of "
            f"ints, Nones and pytrees of them, as in jax.vmap; got {axes!r}."
        )
    return axes


def check_key_argnums(key_argnums: Any) -> tuple[int, ...]:
    """``key_argnums`` as a tuple of ints (possibly negative), or raises."""
    if key_argnums is None:
        return ()
    if isinstance(key_argnums, (tuple, list)):
        return tuple(as_int(f"key_argnums[{i}]", v) for i, v in enumerate(key_argnums))
    return (as_int("key_argnums", key_argnums),)


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else np.shape(value)


def parameter_names(f: Callable[..., Any]) -> list[str | None]:
    """Names of ``f``'s positional parameters (None past them or when unknown)."""
    try:
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds]


def arg_name(position: int, names: Sequence[str | None]) -> str:
    if position < len(names) and names[position]:
        return f"argument {names[position]!r} (position {position})"
    return f"positional argument {position}"


def leaf_axes(name: str, arg: Any, prefix: Any) -> list[int | None]:
    """One axis per leaf of ``arg`` from the pytree prefix ``prefix``."""
    prefix_leaves, prefix_def = jax.tree_util.tree_flatten(prefix, is_leaf=lambda x: x is None)
    try:
        subtrees = prefix_def.flatten_up_to(arg)  # type: ignore[attr-defined]  # PyTreeDef's stub omits it
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"in_axes entry {prefix!r} for {name} is not a pytree prefix of the argument (structure "
            f"{jax.tree_util.tree_structure(arg)}); give one axis for the whole argument or a "
            f"matching structure."
        ) from err
    axes: list[int | None] = []
    for axis, sub in zip(prefix_leaves, subtrees, strict=True):
        axes.extend([axis] * len(jax.tree_util.tree_leaves(sub)))
    return axes


def _normalize_axis(leaf: Leaf, value: Any, axis: int) -> int:
    """A non-negative axis that exists in ``value`` (not the key-data axis of a raw key)."""
    shape = _shape(value)
    rank = len(shape) - (1 if leaf.key == "raw" else 0)
    if not -rank <= axis < rank:
        what = ("a raw key array with batch shape" if leaf.key == "raw" else "a value of shape")
        data = " (the last axis of raw keys holds the two key words)" if leaf.key == "raw" else ""
        raise ValueError(
            f"in_axes maps {leaf.name} over axis {axis}, but it is {what} {shape[:rank]} "
            f"(rank {rank}){data}. Use an axis in [{-rank}, {rank}) or None to leave it unmapped."
            if rank else
            f"in_axes maps {leaf.name} over axis {axis}, but it has no axes (shape {shape}); "
            f"pass None for it in in_axes to leave it unmapped."
        )
    return axis % rank


def leaf_names(params: Sequence[str | None], args: Sequence[Any], kwargs: dict[str, Any]) -> list[str]:
    """How the user would name every leaf of ``(args, kwargs)``, flattened as a whole:
    ``argument 'batch' (position 0) ['x']``, ``keyword argument 'key'``. ``params``: the
    function's positional parameter names (:func:`parameter_names`)."""
    names: list[str] = []
    for position, arg in enumerate(args):
        base = arg_name(position, params)
        names.extend(base + (f" {keystr(path)}" if path else "")
                     for path, _ in jax.tree_util.tree_flatten_with_path(arg)[0])
    for path, _ in jax.tree_util.tree_flatten_with_path(kwargs)[0]:
        names.append(f"keyword argument {path[0].key!r}" + (f" {keystr(path[1:])}" if path[1:] else ""))
    return names


def positional_axes(params: Sequence[str | None], spec: Any, args: Sequence[Any]) -> list[int | None]:
    """The axis of every leaf of the positional ``args`` under one ``in_axes`` spec (an int or None
    for all, or a tuple of pytree prefixes, one per argument, as ``jax.vmap`` reads it); the
    caller has checked a tuple's length."""
    axes: list[int | None] = []
    for position, arg in enumerate(args):
        prefix = spec[position] if isinstance(spec, tuple) else spec
        axes.extend(leaf_axes(arg_name(position, params), arg, prefix))
    return axes


def bind(f: Callable[..., Any], in_axes: Any, key_argnums: tuple[int, ...], axis_size: int | None,
         args: tuple[Any, ...], kwargs: dict[str, Any]) -> Bound:
    """Flattens one call of the mapped function and checks every axis against its argument."""
    names = parameter_names(f)
    if isinstance(in_axes, tuple) and len(in_axes) != len(args):
        raise ValueError(
            f"in_axes has {len(in_axes)} entries but the function was called with {len(args)} "
            f"positional arguments; give one entry per positional argument (keyword arguments are "
            f"mapped over axis 0, as in jax.vmap)."
        )
    key_positions = set()
    for k in key_argnums:
        if not -len(args) <= k < len(args):
            raise ValueError(
                f"key_argnums names positional argument {k}, but the function was called with "
                f"{len(args)} positional arguments; pass the key positionally or fix key_argnums."
            )
        key_positions.add(k % len(args))
    # Flattened as a whole, in the order tree_structure((args, kwargs)) uses (sorted keywords).
    leaf_name = leaf_names(names, args, kwargs)
    axes = positional_axes(names, in_axes, args)
    positions = [p for p, arg in enumerate(args) for _ in jax.tree_util.tree_leaves(arg)]
    values = jax.tree_util.tree_leaves((tuple(args), kwargs))
    leaves: list[Leaf] = []
    for i, value in enumerate(values):
        typed = is_typed_key(value)
        if i < len(axes):  # a positional leaf
            kind = "raw" if positions[i] in key_positions else "typed" if typed else None
            leaves.append(Leaf(leaf_name[i], axes[i], kind))
        else:  # a keyword leaf: mapped over axis 0, except a single typed key (jax.vmap cannot map it)
            leaves.append(Leaf(leaf_name[i], None if typed and not _shape(value) else 0, "typed" if typed else None))
    treedef = jax.tree_util.tree_structure((args, kwargs))
    leaves = [dataclasses.replace(leaf, axis=None if leaf.axis is None else _normalize_axis(leaf, v, leaf.axis))
              for leaf, v in zip(leaves, values, strict=True)]
    return Bound(treedef, values, leaves, _axis_size(leaves, values, axis_size))


def _axis_size(leaves: Sequence[Leaf], values: Sequence[Any], axis_size: int | None) -> int:
    mapped = [(leaf, _shape(v)[leaf.axis]) for leaf, v in zip(leaves, values, strict=True)
              if leaf.axis is not None]
    distinct = {size for _, size in mapped} | ({axis_size} if axis_size is not None else set())
    if len(distinct) > 1:
        listed = "; ".join(f"{leaf.name} has size {size} on axis {leaf.axis}" for leaf, size in mapped)
        given = f"; axis_size={axis_size}" if axis_size is not None else ""
        raise ValueError(
            f"the mapped axes have different sizes: {listed}{given}. Every mapped argument must "
            f"have the same size on its mapped axis."
        )
    if not distinct:
        raise ValueError(
            "no argument is mapped (in_axes is None for every argument) and axis_size is not "
            "given, so the batch size is unknown; map at least one argument or pass axis_size=."
        )
    return distinct.pop()
