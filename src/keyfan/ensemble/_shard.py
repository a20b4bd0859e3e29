"""Scale out: members over a mesh axis ``"member"``, data over an axis ``"data"``, same bits.

Members are independent, so sharding them needs no communication. What can change bits is how
XLA compiles a computation: fusion, FMA contraction and algebraic rewrites (``a / b`` into
``a * (1 / b)``) depend on the program it sees, and an SPMD-partitioned program differs from a
single-device one. So keyfan runs a mesh as single-device programs, one per device, on that
device's block of members and examples -- the same programs (only the block sizes differ) that
run on one device -- and moves data between them only by exact copies:

* gradients: each device computes its members' per-chunk gradient sums on its chunks of the
  batch (block by block, each block by the same fixed-shape program); the chunk sums of a member
  block are copied to its devices and summed over chunks by :func:`tree_sum`, then the optimizer
  updates the block in a program of its own;
* predictions: each device runs its members on its examples; the member blocks of an example
  block are copied together before the ensemble mean.

Every sum over blocks or chunks is :func:`tree_sum` and every sum over members or classes in a
prediction :func:`fixed_sum`: pairwise trees of adds whose order depends only on the number of
terms. Every member runs its own single-member program (on fixed-size blocks of examples), so
results are bitwise equal on 1 device and on any mesh whose devices hold equal numbers of
members, one member per device included.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from keyfan._checks import as_int

__all__ = ["DATA_AXIS", "MEMBER_AXIS", "assemble", "check_layout", "device_blocks", "fixed_sum", "make_mesh",
           "shard_batch", "shard_members", "tree_sum"]

MEMBER_AXIS = "member"
DATA_AXIS = "data"

PyTree = Any


def make_mesh(members: int, data: int = 1, *, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``(member, data)`` mesh over ``members * data`` devices, for ``Trainer(mesh=...)``,
    :func:`shard_members` and :func:`shard_batch`.

    Guarantee: a :class:`~keyfan.ensemble.Trainer` step and :func:`~keyfan.ensemble.predict` on
    this mesh give the same bits as on one device, for any mesh whose member axis divides K
    (every device holding the same number of members), one member per device included.

    Args:
      members: devices along the member axis (K must be divisible by it), a positive int.
      data: devices along the data axis (the number of data chunks must be divisible by it), a
        positive int.
      devices: the devices to use (default: the first ``members * data`` of ``jax.devices()``),
        laid out row by row: ``devices[i * data + j]`` is at mesh position ``(i, j)``.

    Returns:
      A ``jax.sharding.Mesh`` of shape ``(members, data)`` with axis names
        ``("member", "data")``.

    Raises:
      TypeError: ``members`` or ``data`` is not an integer.
      ValueError: ``members`` or ``data`` is below 1, or fewer than ``members * data`` devices
        are available (the message gives the ``XLA_FLAGS`` setting that makes CPU devices).

    Examples:
      >>> import keyfan as kf
      >>> mesh = kf.ensemble.make_mesh(1, 1)
      >>> dict(mesh.shape), mesh.axis_names
      ({'member': 1, 'data': 1}, ('member', 'data'))

      With ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` set before JAX is imported,
      ``make_mesh(members=4, data=2)`` lays 8 CPU devices out as 4 member blocks x 2 data chunks.
    """
    members = as_int("members", members, lo=1)
    data = as_int("data", data, lo=1)
    available = list(jax.devices() if devices is None else devices)
    if members * data > len(available):
        raise ValueError(
            f"a mesh of members={members} x data={data} needs {members * data} devices, but only "
            f"{len(available)} are available; on CPU set XLA_FLAGS=--xla_force_host_platform_device_count="
            f"{members * data} before importing jax."
        )
    grid = np.array(available[: members * data], dtype=object).reshape(members, data)
    return Mesh(grid, (MEMBER_AXIS, DATA_AXIS))


def _check_mesh(mesh: Any) -> Mesh:
    if not isinstance(mesh, Mesh) or set(mesh.axis_names) != {MEMBER_AXIS, DATA_AXIS}:
        raise TypeError(f"mesh must be a jax.sharding.Mesh with axes ('{MEMBER_AXIS}', '{DATA_AXIS}') "
                        f"(see kf.ensemble.make_mesh), got {mesh!r:.120}.")
    return mesh


def _place(tree: PyTree, mesh: Mesh, axis: str, what: str) -> PyTree:
    size = mesh.shape[axis]

    def put(path: Any, leaf: Any) -> Any:
        if getattr(leaf, "ndim", 0) == 0:
            return jax.device_put(leaf, NamedSharding(mesh, P()))
        if leaf.shape[0] % size:
            raise ValueError(
                f"{what}{jax.tree_util.keystr(path)} has {leaf.shape[0]} entries on its leading axis, not "
                f"divisible by the {size} devices of mesh axis '{axis}'; choose a mesh that divides it."
            )
        return jax.device_put(leaf, NamedSharding(mesh, P(axis)))

    return jax.tree_util.tree_map_with_path(put, tree)


def shard_members(tree: PyTree, mesh: Mesh) -> PyTree:
    """Places every array with a leading member axis (an ``Ensemble``, a ``TrainState``) with
    that axis split over ``"member"`` (replicated over ``"data"``); scalars are replicated.

    Guarantee: placement only, every leaf's values (typed keys included) are bitwise those of
    ``tree``, and each device of the member axis holds an equal block of consecutive members.

    Args:
      tree: a pytree whose array leaves have the member axis first (shape ``(K, ...)``) or are
        0-d (e.g. a ``TrainState``'s ``step``).
      mesh: a ``(member, data)`` mesh from :func:`make_mesh`.

    Returns:
      ``tree`` with the same structure and values, each leaf a ``jax.Array`` sharded as
        ``PartitionSpec("member")`` on ``mesh`` (0-d leaves replicated).

    Raises:
      TypeError: ``mesh`` is not a ``jax.sharding.Mesh`` with axes ``("member", "data")``, or a
        leaf is neither an array nor a number (the message names the leaf's path).
      ValueError: ``tree`` holds no array with a member axis (no leaves, or only 0-d ones: a
        Python scalar or list of numbers), or a leaf's leading axis is not divisible by the
        member axis's device count (the message names the leaf's path).

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, keyfan as kf
      >>> ens = kf.Ensemble.init(nn.Dense(2), kf.key(0), members=2, sample_input=jnp.ones((1, 3)))
      >>> placed = kf.ensemble.shard_members(ens, kf.ensemble.make_mesh(1, 1))
      >>> tuple(placed.params["params"]["kernel"].sharding.spec), tuple(placed.keys.sharding.spec)
      (('member',), ('member',))
      >>> jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), placed, ens))
      True
    """
    mesh = _check_mesh(mesh)
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    for path, leaf in leaves:
        if not isinstance(leaf, (jax.Array, np.ndarray, numbers.Number, np.generic)):
            raise TypeError(f"tree{jax.tree_util.keystr(path)} must be an array with the member axis first, shape "
                            f"(K, ...), or a 0-d number, got {type(leaf).__name__} {leaf!r:.60}.")
    if not any(getattr(leaf, "ndim", 0) for _, leaf in leaves):
        got = "no arrays" if not leaves else f"only 0-d leaves ({len(leaves)})"
        raise ValueError(f"tree must hold arrays with the member axis first, shape (K, ...) (an Ensemble, a "
                         f"TrainState), got {got}; pass arrays, e.g. jnp.asarray(...) of a list of numbers.")
    return _place(tree, mesh, MEMBER_AXIS, "state")


def shard_batch(tree: PyTree, mesh: Mesh) -> PyTree:
    """Places a batch (arrays with a leading example axis) split over ``"data"``.

    Guarantee: placement only, every leaf's values are bitwise those of ``tree``; each device of
    the data axis holds an equal block of consecutive examples (replicated over ``"member"``).

    Args:
      tree: a pytree of arrays with the example axis first (shape ``(B, ...)``: inputs, targets,
        example ids); 0-d leaves are replicated.
      mesh: a ``(member, data)`` mesh from :func:`make_mesh`.

    Returns:
      ``tree`` with the same structure and values, each leaf a ``jax.Array`` sharded as
        ``PartitionSpec("data")`` on ``mesh`` (0-d leaves replicated).

    Raises:
      TypeError: ``mesh`` is not a ``jax.sharding.Mesh`` with axes ``("member", "data")``, or a
        leaf of ``tree`` is not a JAX or NumPy array (a Python number or list: the message names
        the leaf's path and says ``jnp.asarray``).
      ValueError: ``tree`` holds no array with an example axis (no leaves, or only 0-d ones), or
        a leaf's leading axis is not divisible by the data axis's device count (the message
        names the leaf's path).

    Examples:
      >>> import jax.numpy as jnp, numpy as np, keyfan as kf
      >>> x = jnp.arange(12.0).reshape(4, 3)
      >>> batch = kf.ensemble.shard_batch({"x": x, "ids": jnp.arange(4)}, kf.ensemble.make_mesh(1, 1))
      >>> tuple(batch["x"].sharding.spec), bool((np.asarray(batch["x"]) == np.asarray(x)).all())
      (('data',), True)
    """
    mesh = _check_mesh(mesh)
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    for path, leaf in leaves:
        if not isinstance(leaf, (jax.Array, np.ndarray)):
            where = f"tree{jax.tree_util.keystr(path)}"
            fix = ("pass arrays: jnp.asarray(...) of the examples (a Python list of numbers is a pytree of "
                   "separate scalar leaves, not a batch)" if isinstance(leaf, (numbers.Number, np.generic))
                   else "pass a JAX or NumPy array")
            raise TypeError(f"{where} must be an array with the example axis first, shape (B, ...), got "
                            f"{type(leaf).__name__} {leaf!r:.60}; {fix}.")
    if not any(leaf.ndim for _, leaf in leaves):
        got = "no arrays" if not leaves else f"only 0-d arrays ({len(leaves)})"
        raise ValueError(f"tree must hold a batch: arrays with the example axis first, shape (B, ...), got {got}; "
                         f"0-d leaves are only replicated alongside a batch.")
    return _place(tree, mesh, DATA_AXIS, "batch")


def device_blocks(tree: PyTree, mesh: Mesh) -> dict[tuple[int, int], PyTree]:
    """Each mesh position's local block of ``tree``: ``{(i, j): tree of single-device arrays}``
    for the device at ``mesh.devices[i, j]`` (leaves laid out by :func:`shard_members` or
    :func:`shard_batch`, or replicated)."""
    leaves, treedef = jax.tree.flatten(tree)
    per_leaf = []
    for leaf in leaves:
        if not isinstance(leaf, jax.Array) or not isinstance(leaf.sharding, NamedSharding) \
                or leaf.sharding.mesh != mesh:
            raise ValueError(f"every array must be placed on the mesh first (kf.ensemble.shard_members / "
                             f"shard_batch); got one with sharding {getattr(leaf, 'sharding', None)}.")
        per_leaf.append({shard.device: shard.data for shard in leaf.addressable_shards})
    out = {}
    for (i, j), device in np.ndenumerate(mesh.devices):
        out[(i, j)] = jax.tree.unflatten(treedef, [shards[device] for shards in per_leaf])
    return out


def assemble(blocks: dict[tuple[int, int], PyTree], mesh: Mesh, axis: str | None) -> PyTree:
    """The inverse of :func:`device_blocks`: global arrays split over ``axis`` (None: replicated)
    from every device's block (blocks along the other mesh axis must be copies)."""
    first = blocks[(0, 0)]
    leaves0, treedef = jax.tree.flatten(first)
    flat = {pos: jax.tree.leaves(tree) for pos, tree in blocks.items()}
    factor = 1 if axis is None else mesh.shape[axis]
    spec = P() if axis is None else P(axis)
    out = []
    for n, leaf in enumerate(leaves0):
        arrays = [flat[pos][n] for pos, _ in np.ndenumerate(mesh.devices)]
        leaf_spec = spec if leaf.ndim else P()
        shape = (leaf.shape[0] * factor, *leaf.shape[1:]) if leaf.ndim and axis is not None else leaf.shape
        out.append(jax.make_array_from_single_device_arrays(shape, NamedSharding(mesh, leaf_spec), arrays))
    return jax.tree.unflatten(treedef, out)


def check_layout(mesh: Mesh, members: int) -> None:
    """Raises unless each device of the member axis holds the same number of members."""
    size = mesh.shape[MEMBER_AXIS]
    if members % size:
        raise ValueError(
            f"{members} members over the {size} devices of mesh axis '{MEMBER_AXIS}' must give each device "
            f"the same number of members; use a member axis whose device count divides {members}."
        )


def fixed_sum(a: jax.Array, axis: int = 0) -> jax.Array:
    """The sum over ``axis`` as a pairwise tree of elementwise adds (``a[i] + a[i + n // 2]``,
    recursively): its order depends on ``a.shape[axis]`` only, never on the other axes or on
    how XLA would vectorise a ``reduce``."""
    a = jnp.moveaxis(a, axis, 0)
    if a.shape[0] == 0:
        return jnp.zeros(a.shape[1:], a.dtype)
    while a.shape[0] > 1:
        n, half = a.shape[0], a.shape[0] // 2
        head = a[:half] + a[half : 2 * half]
        a = jnp.concatenate([head, a[2 * half :]]) if n % 2 else head
    return a[0]


def tree_sum(a: jax.Array, axis: int = 0) -> jax.Array:
    """The sum over ``axis`` as a pairwise tree of neighbours: ``a[0] + a[1]``, ``a[2] + a[3]``,
    ... level by level, an odd last term carried up unchanged to the next level.

    The order depends on ``a.shape[axis]`` only. A run of ``2**j`` neighbours starting at a
    multiple of ``2**j`` is a subtree, so summing equal groups of ``2**j`` terms first (the
    blocks of one chunk) and then the group sums with ``tree_sum`` gives the same bits as
    ``tree_sum`` over all terms.
    """
    a = jnp.moveaxis(a, axis, 0)
    if a.shape[0] == 0:
        return jnp.zeros(a.shape[1:], a.dtype)
    while a.shape[0] > 1:
        n = a.shape[0]
        pairs = a[0 : n - 1 : 2] + a[1:n:2]
        a = jnp.concatenate([pairs, a[n - 1 :]]) if n % 2 else pairs
    return a[0]
