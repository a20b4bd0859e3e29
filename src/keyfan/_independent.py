"""``keyfan.check_independent``: the runtime check for duplicated examples.

Dataflow cannot see every copy of a key: ``jnp.broadcast_to(key, (B,))`` or a tiled key array
built outside the audited function look like any per-example keys. The old debugging tip is to
compare the first and the last example of a batch; this does it for every pair at once.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np
from jax.tree_util import keystr

from keyfan._checks import as_int, is_typed_key
from keyfan.typing import PyTree

__all__ = ["IndependenceReport", "check_independent"]


@dataclasses.dataclass(frozen=True)
class IndependenceReport:
    """Which examples of a batch are bitwise identical: what ``kf.check_independent`` returns.

    Examples:
      >>> import jax, keyfan as kf
      >>> keys = jax.numpy.stack([kf.key(0)] * 3)   # one key copied: every row draws the same
      >>> report = kf.check_independent(jax.vmap(lambda k: jax.random.normal(k, (2,)))(keys))
      >>> report.ok, report.duplicates
      (False, ((0, 1, 2),))
    """

    examples: int
    """Number of examples compared."""
    axis: int
    """The batch axis (as given)."""
    duplicates: tuple[tuple[int, ...], ...]
    """Groups of identical examples (indices ascending), ordered by their first index."""

    @property
    def ok(self) -> bool:
        """True when every example differs from every other."""
        return not self.duplicates

    def __str__(self) -> str:
        head = f"keyfan.check_independent: {self.examples} examples along axis {self.axis}"
        if self.ok:
            return f"{head}, all pairwise distinct"
        shown = "; ".join(_group(g) for g in self.duplicates[:10])
        more = f"; and {len(self.duplicates) - 10} more groups" if len(self.duplicates) > 10 else ""
        return (f"{head}: {len(self.duplicates)} group(s) of identical examples: {shown}{more}. A "
                f"broadcast, tiled or reused key gives examples the same randomness; make one key per "
                f"example with jax.random.split(key, n) or kf.fan_out(key, n).")


def _group(group: tuple[int, ...]) -> str:
    listed = ", ".join(map(str, group[:8])) + (", ..." if len(group) > 8 else "")
    return f"examples {listed} ({len(group)} identical)"


def check_independent(batch: PyTree, axis: int = 0) -> IndependenceReport:
    """Flags examples of a batch that are bitwise identical, comparing all pairs.

    An example is everything at one index of ``axis`` in every leaf of ``batch``: two examples
    are duplicates when all their leaves match bit for bit (NaNs included). Use it on what
    should differ between examples, such as per-example keys, noise or dropout masks.

    Args:
      batch: an array or a pytree of arrays (typed keys are compared by their key data, raw keys
        as uint32 arrays); every leaf has the same size on ``axis``.
      axis: the batch axis of every leaf (negative counts from the end; for raw keys
        ``uint32[..., 2]`` the last axis holds the key words).

    Returns:
      An :class:`IndependenceReport`; ``report.duplicates`` lists the groups of identical
        examples and ``report.ok`` is True when there are none.

    Raises:
      TypeError: a leaf is not an array, or ``axis`` is not an int.
      ValueError: ``batch`` has no leaves, a leaf has no axis ``axis``, or leaves disagree on the
        number of examples.

    Examples:
      >>> import jax, jax.numpy as jnp, keyfan as kf
      >>> tiled = jnp.tile(jax.random.PRNGKey(0), (4, 1))      # one key, four times
      >>> kf.check_independent(tiled).duplicates
      ((0, 1, 2, 3),)
      >>> kf.check_independent(jax.random.split(jax.random.PRNGKey(0), 4)).ok
      True
    """
    axis = as_int("axis", axis)
    leaves = jax.tree_util.tree_flatten_with_path(batch)[0]
    if not leaves:
        raise ValueError(f"batch has no array leaves (got {type(batch).__name__}); pass an array or a "
                         f"pytree of arrays whose axis {axis} indexes examples.")
    rows, sizes = [], {}
    for path, leaf in leaves:
        name = f"batch{keystr(path)}"
        data, ndim = _as_numpy(name, leaf)
        if not -ndim <= axis < ndim:
            raise ValueError(f"{name} has shape {data.shape[:ndim]}, which has no axis {axis}; every "
                             f"leaf needs the batch axis (use axis= to name it).")
        moved = np.moveaxis(data, axis % ndim, 0)
        sizes[name] = moved.shape[0]
        rows.append(np.ascontiguousarray(moved).reshape(moved.shape[0], math.prod(moved.shape[1:])).view(np.uint8))
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{n}: {s}" for n, s in sizes.items())
        raise ValueError(f"the leaves of batch disagree on the number of examples along axis {axis} "
                         f"({listed}); every leaf must have one entry per example.")
    examples = next(iter(sizes.values()))
    table = np.concatenate(rows, axis=1)
    if examples < 2:
        return IndependenceReport(examples, axis, ())
    if table.shape[1] == 0:
        raise ValueError(f"the examples of batch hold no data (shapes {[r.shape for r in rows]}); "
                         f"there is nothing to compare.")
    records = np.ascontiguousarray(table).view(np.dtype((np.void, table.shape[1]))).ravel()
    _, inverse, counts = np.unique(records, return_inverse=True, return_counts=True)
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(inverse.ravel().tolist()):
        if counts[label] > 1:
            groups.setdefault(label, []).append(index)
    duplicates = tuple(sorted((tuple(g) for g in groups.values()), key=lambda g: g[0]))
    return IndependenceReport(examples, axis, duplicates)


def _as_numpy(name: str, leaf: Any) -> tuple[np.ndarray, int]:
    """The leaf's data and its number of axes (a typed key array's own axes, not its words)."""
    if is_typed_key(leaf):
        return np.asarray(jax.random.key_data(leaf)), leaf.ndim
    if not isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
        raise TypeError(f"{name} must be an array, got {type(leaf).__name__} {leaf!r}; check_independent "
                        f"compares the examples of arrays.")
    data = np.asarray(leaf)
    return data, data.ndim
