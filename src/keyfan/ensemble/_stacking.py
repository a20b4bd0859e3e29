"""Checks for building ensembles from parts: same structure, one key per member, member indices."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from keyfan._keyarg import check_key

__all__ = ["check_member_keys", "check_same_structure", "member_index"]

PyTree = Any


def check_same_structure(name: str, trees: list[PyTree]) -> None:
    ref = jax.tree.structure(trees[0])
    ref_shapes = [(jnp.shape(a), jnp.result_type(a)) for a in jax.tree.leaves(trees[0])]
    for i, tree in enumerate(trees[1:], start=1):
        if jax.tree.structure(tree) != ref:
            raise ValueError(f"{name}[{i}] has a different structure than {name}[0]: {jax.tree.structure(tree)} "
                             f"vs {ref}.")
        shapes = [(jnp.shape(a), jnp.result_type(a)) for a in jax.tree.leaves(tree)]
        for path, got, want in zip(jax.tree_util.tree_leaves_with_path(tree), shapes, ref_shapes, strict=True):
            if got != want:
                raise ValueError(f"{name}[{i}] leaf {jax.tree_util.keystr(path[0])} has shape/dtype {got}, "
                                 f"{name}[0] has {want}; members must share one architecture.")


def check_member_keys(keys: Any, k: int) -> jax.Array | None:
    if keys is None:
        return None
    if isinstance(keys, (list, tuple)):
        kinds = [check_key(f"keys[{i}]", key) for i, key in enumerate(keys)]
        keys = kinds[0].wrap(jnp.stack([kind.data for kind in kinds]))
    arg = check_key("keys", keys, batched=True)
    if arg.shape != (k,):
        raise ValueError(f"keys must hold one key per member, shape ({k},), got {arg.shape}.")
    return arg.value


def member_index(idx: Any, k: int) -> Any:
    if isinstance(idx, slice):
        if not range(k)[idx]:
            raise ValueError(f"idx {idx} selects no member of {k}; a sub-ensemble needs at least one.")
        return idx
    if isinstance(idx, (int, np.integer)) and not isinstance(idx, bool):
        raise TypeError(f"ens[{idx}] is ambiguous: use ens.member({idx}) for one plain model, or "
                        f"ens[{idx}:{idx + 1}] for a one-member ensemble.")
    try:
        arr = np.asarray(idx)
    except Exception as err:
        raise TypeError(f"idx must be a slice, an integer index array or a boolean mask, got {type(idx).__name__}.") \
            from err
    if arr.dtype == bool:
        if arr.shape != (k,):
            raise ValueError(f"a boolean mask must have shape ({k},), one entry per member, got {arr.shape}.")
        arr = np.flatnonzero(arr)
    elif not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1:
        raise TypeError(f"idx must be a slice, a 1-D integer index array or a boolean mask of shape ({k},), "
                        f"got dtype {arr.dtype} and shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError("idx selects no member; a sub-ensemble needs at least one.")
    if arr.min() < -k or arr.max() >= k:
        raise ValueError(f"idx holds member indices in [{arr.min()}, {arr.max()}], outside [-{k}, {k}).")
    return jnp.asarray(arr % k)
