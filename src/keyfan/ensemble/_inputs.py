"""Input specs: the per-example shape and dtype an ensemble was initialised for, checked on use.

``sample_input`` is a batch ``(B, ...)`` (or a pytree of them); the spec keeps, per leaf, the
shape after the batch axis and the dtype. An input to ``apply`` must match it with any batch
size, so a wrong feature count fails at the boundary with both shapes printed, not deep in XLA.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

__all__ = ["InputSpec", "check_batch", "check_input", "input_spec"]


class InputSpec(NamedTuple):
    """Hashable per-example shapes and dtypes of a (pytree) input."""

    treedef: Any
    leaves: tuple[tuple[tuple[int, ...], str], ...]

    def describe(self) -> str:
        shapes = [f"(B, {', '.join(map(str, s))}) {d}" if s else f"(B,) {d}" for s, d in self.leaves]
        return shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"


def _leaves(name: str, x: Any) -> tuple[list[Any], Any]:
    leaves, treedef = jax.tree.flatten(x)
    if not leaves:
        raise ValueError(f"{name} must hold at least one array, got {x!r:.80}.")
    arrays = []
    for leaf in leaves:
        if not hasattr(leaf, "shape"):
            leaf = np.asarray(leaf)
        arrays.append(leaf)
    return arrays, treedef


def _check_not_numbers(name: str, x: Any, layout: str) -> None:
    """Raises ``TypeError`` for a Python list/tuple of numbers given where an array batch belongs
    (as a pytree its leaves would be scalars, and the error would say "got a scalar")."""
    if isinstance(x, (list, tuple)) and any(not hasattr(leaf, "shape") for leaf in jax.tree.leaves(x)):
        raise TypeError(f"{name} must be an array batch {layout}, got a Python {type(x).__name__} of numbers; "
                        f"pass jnp.asarray({name}).")


def input_spec(name: str, sample: Any) -> InputSpec:
    """The spec of a sample batch; every leaf needs a batch axis (ndim >= 1)."""
    _check_not_numbers(name, sample, "(B, ...)")
    leaves, treedef = _leaves(name, sample)
    for leaf in leaves:
        if leaf.ndim == 0:
            raise ValueError(f"{name} must be a batch with a leading batch axis (B, ...), got a scalar; "
                             f"use e.g. jnp.ones((1, in_features)).")
    return InputSpec(treedef, tuple((tuple(leaf.shape[1:]), str(np.dtype(leaf.dtype))) for leaf in leaves))


def check_input(name: str, x: Any, spec: InputSpec, *, members: int | None = None) -> None:
    """Raises ``ValueError`` unless ``x`` matches ``spec`` (with a leading ``(members,)`` axis if given)."""
    lead = 2 if members is not None else 1
    layout = "(K, B, ...)" if members is not None else "(B, ...)"
    if isinstance(x, (list, tuple)) and jax.tree.structure(x) != spec.treedef:
        raise TypeError(f"{name} must be an array batch {layout} like sample_input ({spec.describe()}), got a "
                        f"Python {type(x).__name__}; pass jnp.asarray({name}).")
    leaves, treedef = _leaves(name, x)
    if treedef != spec.treedef:
        raise ValueError(f"{name} has structure {treedef}, but the ensemble was initialised with {spec.treedef}.")
    for leaf, (shape, dtype) in zip(leaves, spec.leaves, strict=True):
        got = tuple(leaf.shape)
        if members is not None and (leaf.ndim < 1 or got[0] != members):
            raise ValueError(f"{name} must have a leading member axis of size {members} ({layout}) with "
                             f"per_member=True, got shape {got}.")
        if got[lead:] != shape or leaf.ndim != len(shape) + lead:
            want = spec.describe() if members is None else "(K, " + spec.describe()[1:]
            raise ValueError(f"{name} has shape {got}, but the ensemble was initialised for inputs {want} "
                             f"(from sample_input); only the batch size may differ.")
        if np.dtype(leaf.dtype).kind != np.dtype(dtype).kind:
            raise ValueError(f"{name} has dtype {leaf.dtype}, but sample_input had {dtype}.")


def check_batch(name: str, x: Any, spec: InputSpec | None, *, members: int | None = None) -> None:
    """Raises unless ``x`` is a batch: against ``spec`` as :func:`check_input` does, or, for an
    ensemble without one, every leaf an array with the leading ``(B,)`` (``(K, B)``) axes."""
    if spec is not None:
        check_input(name, x, spec, members=members)
        return
    lead = 2 if members is not None else 1
    layout = "(K, B, ...)" if members is not None else "(B, ...)"
    _check_not_numbers(name, x, layout)
    for leaf in _leaves(name, x)[0]:
        if leaf.ndim < lead:
            raise ValueError(f"{name} must be a batch {layout} with {lead} leading axes, got an array of shape "
                             f"{tuple(leaf.shape)}.")
