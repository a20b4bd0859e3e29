"""Training an ensemble: one jitted step for all K members, reproducible bit for bit.

The randomness of a run is a pure function of the ensemble's key:

* member ``m``'s dropout key for example ``id`` at step ``t`` is
  ``kf.example_keys(kf.named(member_key_m, "dropout"), [id], step=t)[0]``
  (:func:`~keyfan.ensemble.dropout_keys`): the same whatever K, the batch order, the chunking
  or the device layout;
* member ``m``'s bootstrap weights are the counts of ``N`` draws from ``N`` examples with
  ``kf.named(member_key_m, "bootstrap")``: training on the weighted data is training on that
  member's bootstrap resample.

Each example runs alone (as a batch of one) with its own dropout key. With
``layout_invariant=True`` (the default) the gradient is reduced in fixed-size blocks:

* the batch is cut into blocks of ``block_size`` consecutive examples (default: one block per
  chunk, ``B / chunks`` examples); a block's gradient is ordinary backprop of its (weighted) loss
  sum, computed by ONE program of fixed shapes for ONE member on ONE block -- the unbatched
  single-member program, with barriers so that XLA compiles it alone -- run by a loop
  (``lax.map``) over the members a device holds and over the blocks;
* with XLA's products (``products="gemm"``) members are never vmapped together: XLA picks a
  matmul's or a reduction's kernel (YNNPACK or Eigen, its blocking, a tree-split reduction) by
  the size of the whole operation, and a member axis (or members folded into a matrix of a shared
  input) would make a member's rounding depend on how many members share the program
  (``member_group``, the mesh's member axis); with ``products="elementwise"`` (the rule's choice
  for small block programs) every float product and sum is elementwise (``_exact.py``), whose
  bits do not depend on a member axis, and the members of a device run in one vmap;
* block gradients are summed by :func:`~keyfan.ensemble._shard.tree_sum`, neighbour pairs level
  by level, whose shape depends only on the number of blocks: first over the blocks of each of
  ``chunks`` chunks (the data-parallel unit), then over the chunks, which gives the same tree
  when each chunk holds a power-of-two number of blocks;
* the mean and the optimizer update run one member at a time too, written into the stacked
  state in place as they are computed (``_in_place.py``), every float product rounded on its own
  (no FMA whose contraction would depend on the fusion around it; with ``"gemm"`` products; the
  ``"elementwise"`` form runs the update as a branch of its own, its products rounded alike).

So a step's bits depend on the state, the batch in its order and the block size, and on nothing
else: member ``m`` trained in any ensemble equals it trained alone, with the same bits on 1 device
and on any ``(member, data)`` mesh (``_shard.py``, one member per device included) for the same
``chunks``, with any ``member_group``, and, with an explicit ``block_size``, for every
``chunks`` whose chunks hold a power-of-two number of blocks. A batch whose chunks are not a
multiple of ``block_size`` is an error (no silent padding). ``block_size=1`` is the per-example
mode (per-example gradients, memory ``K x B x params``).
"""

from __future__ import annotations

import dataclasses
import functools
import weakref
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import flax.errors
import jax
import jax.numpy as jnp
import numpy as np
import optax

from keyfan._checks import as_bool, as_int
from keyfan._jaxinternals.core import jaxpr_as_fun
from keyfan.ensemble._arrays import member_keys_arg
from keyfan.ensemble._ensemble import Ensemble
from keyfan.ensemble._exact import assess, exact
from keyfan.ensemble._in_place import written_in_place
from keyfan.ensemble._losses import LOSS_TASKS, get_loss
from keyfan.ensemble._per_example import apply_one, member_dropout_keys, stream_keys
from keyfan.ensemble._shard import (
    DATA_AXIS,
    MEMBER_AXIS,
    _check_mesh,
    assemble,
    check_layout,
    device_blocks,
    shard_batch,
    shard_members,
    tree_sum,
)
from keyfan.keys import named

__all__ = ["ELEMENTWISE_MAX_PRODUCTS", "TrainState", "Trainer", "bootstrap_weights"]

PyTree = Any

PRODUCTS = ("auto", "elementwise", "gemm")
"""The ``products=`` settings of :class:`Trainer`."""

ELEMENTWISE_MAX_PRODUCTS = 2**18
"""The rule of ``products="auto"``: one member's block program (forward and backward) with at
most this many multiplies in its matrix products runs ``"elementwise"`` (all members of a
device in one vmap), above it ``"gemm"`` (one member at a time). Measured
(docs/guides/performance.md): the ``small`` trainer-bench size (2-16-16-2 MLP, blocks of 16,
14,848 multiplies) runs elementwise in 1.03-1.14x the time of the fastest of a hand-written
member vmap, Equinox and a Python loop (two runs on a loaded machine; 1.14-1.18x in CPU time),
where the loop over members (``"gemm"``) took 3.0x the hand-written vmap's; the ``middle`` size
has 77 M multiplies per member, which the elementwise form would run without a GEMM's blocking."""


class TrainState(NamedTuple):
    """Everything a run needs to continue: a pytree, every array leaf with a member axis except
    ``step``.

    Attributes:
      ensemble: the :class:`~keyfan.Ensemble` (stacked params and member keys).
      opt_state: the optimizer state, stacked per member.
      step: int32 scalar, the number of steps taken (the dropout keys' step).
      weights: float32 ``(K, N)`` bootstrap weights per member and example id, or None.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, optax, keyfan as kf
      >>> ens = kf.Ensemble.init(nn.Dense(2), kf.key(0), members=3, sample_input=jnp.ones((1, 2)))
      >>> state = kf.ensemble.Trainer(optax.sgd(0.1)).init(ens, bootstrap=10)
      >>> int(state.step), state.weights.shape
      (0, (3, 10))
    """

    ensemble: Ensemble
    opt_state: PyTree
    step: jax.Array
    weights: jax.Array | None


def bootstrap_weights(member_keys: jax.Array, n: int) -> jax.Array:
    """Per-member bootstrap weights: how often each example id is drawn when member ``m``
    resamples ``n`` of ``n`` examples with replacement using ``kf.named(member_keys[m],
    "bootstrap")``.

    Args:
      member_keys: ``(K,)`` typed keys or ``(K, 2)`` uint32 key data, one per member.
      n: the dataset size (a positive integer).

    Returns:
      A float32 array of shape ``(K, n)`` whose row ``m`` counts member ``m``'s draws of each
        example id (each row sums to ``n`` and depends on member ``m``'s key only).

    Raises:
      TypeError: ``member_keys`` is not keys (the message names ``member_keys`` and shows its
        shape and dtype), or ``n`` is not an integer (a bool, a string, an array with axes).
      ValueError: ``member_keys`` is a single key or a grid of keys rather than ``(K,)`` keys, or
        ``n`` is not a positive whole number (``2.5`` is refused, never rounded).

    Examples:
      >>> import keyfan as kf
      >>> w = kf.ensemble.bootstrap_weights(kf.fan_out(kf.key(0), 3), 5)
      >>> w.shape, [float(r) for r in w.sum(axis=1)]
      ((3, 5), [5.0, 5.0, 5.0])
    """
    member_keys_arg("member_keys", member_keys)
    n = as_int("n", n, lo=1)

    def one(key: jax.Array) -> jax.Array:
        draws = jax.random.randint(named(key, "bootstrap"), (n,), 0, n)
        return jnp.zeros((n,), jnp.float32).at[draws].add(1.0)

    return jax.vmap(one)(member_keys)


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
    """A jitted training step for every member of an ensemble at once, the same bits on any layout.

    Args:
      optimizer: any ``optax.GradientTransformation``; its state is stacked per member. For
        per-member learning rates build it with ``optax.inject_hyperparams``.
      loss: ``"cross_entropy"`` (integer labels), ``"mse"``, ``"gaussian_nll"`` or a callable
        ``loss(output, target) -> scalar`` for ONE example.
      model_kwargs: keyword arguments for the model during training (a mapping of str names to
        values), e.g. ``{"train": True}``
        for a linen module whose dropout depends on a ``train`` flag.
      dropout: True (default) gives each (member, step, example) its own dropout key; False
        passes no dropout key (a bool: a string such as ``"no"`` is refused).
      chunks: split each batch into this many equal chunks (a multiple of the mesh's data axis).
      mesh: a ``(member, data)`` mesh from :func:`~keyfan.ensemble.make_mesh`, or None.
      layout_invariant: reduce the gradient in fixed blocks summed in a fixed tree (default): the
        step gives the same bits on 1 device and on any mesh, for any ``member_group``, and each
        member the bits it gets trained alone, at the cost of ordinary backprop, one member at
        a time. ``False`` vmaps the members (``member_group`` at a time, default all) and lets
        XLA's backward pass sum over each chunk: reproducible on one layout, but the bits may
        change with the number of members or chunks a device holds.
      block_size: examples per reduction block (``layout_invariant=True``); each chunk of the
        batch must be a multiple of it (else a ``ValueError``). None (default): one block per
        chunk, the fastest (smaller blocks materialise one gradient per block: 1.15-1.6x slower
        at b = 32-128 for 784-1024-1024-10 MLPs); ``1`` gives per-example gradients. With an
        explicit size the bits also stay the same across ``chunks`` settings whose chunks hold a
        power-of-two number of blocks.
      donate: let each step reuse the buffers of the parameters and optimizer state it is given
        for the ones it returns (default True; as ``jax.jit(..., donate_argnums=...)``): no copy
        of the whole state per step. The state passed to :meth:`step` is consumed; :meth:`init`
        copies the ensemble's parameters, so the ensemble given to it stays usable. False keeps
        every state usable (stepping twice from one state) at the cost of that copy.
      member_group: members per step of the loop over a device's members (it must divide
        them). Layout-invariant, each member still runs its own single-member program, so the
        bits never change with it; None (default): 1 with ``"gemm"`` products, all the members a
        device holds with ``"elementwise"`` products (the fastest measured, docs/guides/
        performance.md). With ``layout_invariant=False``: members vmapped together (default:
        all the members a device holds).
      products: how a layout-invariant step computes matrix products and float sums.
        ``"gemm"``: XLA's matrix products, each member its own single-member program, run by a
        loop over members (a member vmap would let XLA pick another kernel by the number of
        members). ``"elementwise"``: every product as elementwise multiplies summed by a fixed
        pairwise tree, every float sum the same tree (``ensemble/_exact.py``), whose bits do not
        depend on a member axis, so the members of a group run in ONE vmap: the fastest for
        small models, work linear in each product's multiplies (no product is stored). ``"auto"``
        (default): ``"elementwise"`` when one member's block program holds at most
        :data:`ELEMENTWISE_MAX_PRODUCTS` multiplies and only operations it keeps exact, else
        ``"gemm"``; the rule reads one member's block shapes only (never the number of members,
        devices or groups), so every arrangement of a run gets the same choice and the same
        bits. The two forms round differently.

    Raises:
      TypeError: ``optimizer`` is not an ``optax.GradientTransformation``; ``loss`` is neither a
        name nor a callable; ``model_kwargs`` is not a mapping with str keys; ``dropout``,
        ``layout_invariant`` or ``donate`` is not True or False (a string such as ``"no"`` is
        refused, not read as truthy); ``chunks``, ``block_size`` or ``member_group`` is not an
        integer; ``products`` is not a string; ``mesh`` is not a ``(member, data)`` mesh.
      ValueError: ``loss`` or ``products`` is an unknown name; ``chunks``, ``block_size`` or
        ``member_group`` is not a positive whole number (``2.5`` is refused, never rounded); or
        ``chunks`` is not a multiple of the mesh's data axis.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, optax, keyfan as kf
      >>> x, y = jnp.ones((8, 2)), jnp.zeros((8,), jnp.int32)
      >>> ens = kf.Ensemble.init(nn.Dense(2), kf.key(0), members=3, sample_input=x)
      >>> trainer = kf.ensemble.Trainer(optax.sgd(0.1), loss="cross_entropy")
      >>> state = trainer.init(ens)
      >>> state, losses = trainer.step(state, x, y, jnp.arange(8))
      >>> losses.shape, int(state.step)
      ((3,), 1)
    """

    optimizer: optax.GradientTransformation
    loss: Any = "cross_entropy"
    model_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    dropout: bool = True
    chunks: int = 1
    mesh: Any = None
    layout_invariant: bool = True
    block_size: int | None = None
    member_group: int | None = None
    donate: bool = True
    products: str = "auto"
    _choices: dict[Any, str] = dataclasses.field(default_factory=dict, init=False, repr=False)
    _checked: dict[Any, tuple[Any, int | None]] = dataclasses.field(default_factory=dict, init=False, repr=False)
    _values_checked: list[Any] = dataclasses.field(default_factory=list, init=False, repr=False)
    """The last ``(ids, y, weights, classes)`` whose values passed the checks, when ``ids`` and
    ``y`` are ``jax.Array``s (immutable: the same objects hold the same values)."""

    def __post_init__(self) -> None:
        if not isinstance(self.optimizer, optax.GradientTransformation):
            raise TypeError(f"optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), "
                            f"got {type(self.optimizer).__name__}.")
        get_loss(self.loss)
        if not isinstance(self.model_kwargs, Mapping) or not all(isinstance(k, str) for k in self.model_kwargs):
            got = (f"keys {[k for k in self.model_kwargs if not isinstance(k, str)]!r:.60}"
                   if isinstance(self.model_kwargs, Mapping) else f"{type(self.model_kwargs).__name__} "
                   f"{self.model_kwargs!r:.60}")
            raise TypeError(f"model_kwargs must be a mapping of str keyword names to values (e.g. {{'train': True}}), "
                            f"got {got}.")
        for flag in ("dropout", "layout_invariant", "donate"):
            object.__setattr__(self, flag, as_bool(flag, getattr(self, flag)))
        object.__setattr__(self, "chunks", as_int("chunks", self.chunks, lo=1))
        if self.block_size is not None:
            object.__setattr__(self, "block_size", as_int("block_size", self.block_size, lo=1))
        if self.member_group is not None:
            object.__setattr__(self, "member_group", as_int("member_group", self.member_group, lo=1))
        if not isinstance(self.products, str):
            raise TypeError(f"products must be one of {', '.join(map(repr, PRODUCTS))} (a string), "
                            f"got {type(self.products).__name__} {self.products!r:.60}.")
        if self.products not in PRODUCTS:
            raise ValueError(f"products must be one of {', '.join(map(repr, PRODUCTS))}, got {self.products!r}.")
        if self.mesh is not None:
            _check_mesh(self.mesh)
            if self.chunks % self.mesh.shape[DATA_AXIS]:
                raise ValueError(f"chunks={self.chunks} must be a multiple of the mesh's '{DATA_AXIS}' axis "
                                 f"({self.mesh.shape[DATA_AXIS]} devices), so each device holds whole chunks.")

    # -- init ------------------------------------------------------------------------------

    def init(self, ensemble: Ensemble, *, bootstrap: Any = None, learning_rates: Any = None) -> TrainState:
        """The initial :class:`TrainState` (step 0).

        Args:
          ensemble: the members to train (with member keys when ``dropout`` or ``bootstrap``).
          bootstrap: the dataset size ``N`` to give each member its own bootstrap weights over
            example ids ``0..N-1`` (:func:`bootstrap_weights`), or None for plain training.
          learning_rates: optional ``(K,)`` positive learning rates, one per member; needs an
            optimizer made with ``optax.inject_hyperparams``.

        Returns:
          The state at step 0. Its ensemble records the task of a named loss
          (``"cross_entropy"`` -> ``"classification"``, ``"mse"`` -> ``"regression"``,
          ``"gaussian_nll"`` -> ``"gaussian"``; a callable loss keeps the ensemble's own), so
          ``state.ensemble.predict(x)`` summarises the outputs as what they are.

        Raises:
          TypeError: ``ensemble`` is not a :class:`~keyfan.Ensemble`, ``bootstrap`` is not an
            integer, or ``learning_rates`` is not numbers (a string, booleans, keys).
          ValueError: the ensemble records a different task than the loss implies, it has no
            member keys while ``dropout`` or ``bootstrap`` needs them, ``bootstrap`` is not a
            positive whole number, ``learning_rates`` is not ``K`` finite positive numbers, or
            the optimizer does not hold its learning rate in its state.
        """
        if not isinstance(ensemble, Ensemble):
            raise TypeError(f"ensemble must be a kf.Ensemble, got {type(ensemble).__name__}.")
        if bootstrap is not None:
            bootstrap = as_int("bootstrap", bootstrap, lo=1)
        ensemble = _with_loss_task(ensemble, self.loss)
        if ensemble.keys is None and (self.dropout or bootstrap is not None):
            raise ValueError("this ensemble has no member keys; pass keys= to Ensemble.stack, or use "
                             "Trainer(dropout=False) without bootstrap=.")
        if self.donate:  # the steps reuse the state's buffers: the caller's ensemble keeps its own
            ensemble = dataclasses.replace(ensemble, params=jax.tree.map(jnp.copy, ensemble.params))
        trainable, _ = jax.vmap(ensemble.model.split_trainable)(ensemble.params)
        opt_state = jax.vmap(self.optimizer.init)(trainable)
        if learning_rates is not None:
            opt_state = _set_learning_rates(opt_state, learning_rates, ensemble.members)
        weights = None if bootstrap is None or ensemble.keys is None else bootstrap_weights(ensemble.keys, bootstrap)
        if self.mesh is not None:
            check_layout(self.mesh, ensemble.members)
        return TrainState(ensemble, opt_state, jnp.zeros((), jnp.int32), weights)

    # -- step ------------------------------------------------------------------------------

    def step(self, state: TrainState, x: Any, y: Any, ids: Any) -> tuple[TrainState, jax.Array]:
        """One optimizer step for every member on the batch ``(x, y)``.

        Args:
          state: from :meth:`init` or a previous step.
          x: inputs ``(B, ...)`` shared by all members (``B`` divisible by ``chunks``).
          y: targets ``(B, ...)``.
          ids: ``(B,)`` stable integer example ids (dropout keys and bootstrap weights use them).

        Returns:
          ``(new_state, losses)``, ``losses`` ``(K,)`` float32: each member's (weighted) mean
          loss on the batch before the update.
        """
        if not isinstance(state, TrainState):
            raise TypeError(f"state must be a TrainState from Trainer.init, got {type(state).__name__}.")
        from keyfan.ensemble._train_checks import check_step_values

        if self.donate:
            # A step donates every parameter and optimizer-state leaf together: the first one
            # tells (each leaf checked cost about 5 us of a 0.5 ms step).
            for a in jax.tree.leaves(state.ensemble.params)[:1]:
                if getattr(a, "is_deleted", _never)():
                    raise ValueError("state was consumed by an earlier Trainer.step: with donate=True (the default) a "
                                     "step reuses its state's buffers for the new state; continue from the state that "
                                     "step returned, or build the Trainer with donate=False to step from one state "
                                     "twice.")
        ids = ids if isinstance(ids, (np.ndarray, jax.Array)) else np.asarray(ids)
        # The checks of shapes, dtypes and the model run once per signature of the inputs (they cost
        # about as much as a small model's whole step); the checks of values below.
        signature = _input_signature(state, x, y, ids)
        checked = self._checked.get(signature)
        if checked is None or checked[0] is not state.ensemble.model:
            checked = (state.ensemble.model, self._check_shapes(state, x, y, ids))
            if len(self._checked) > 64:
                self._checked.clear()
            self._checked[signature] = checked
        # The checks of values run every step, except for the very arrays (jax.Arrays, which
        # cannot change) that passed them last step: a loop that trains on one batch (full-batch
        # training) pays for them once; they cost about 25 us of the small bench size's 0.5 ms step.
        # Held by weak references: the trainer keeps no batch alive.
        last = self._values_checked
        if not (last and last[0]() is ids and last[1]() is y and last[2]() is state.weights and last[3] == checked[1]):
            check_step_values(self, state, y, ids, checked[1])
            last[:] = (weakref.ref(ids), weakref.ref(y), _weak(state.weights), checked[1]) \
                if isinstance(ids, jax.Array) and isinstance(y, jax.Array) else ()
        try:
            return self._run(state, x, y, ids if isinstance(ids, jax.Array) else jnp.asarray(ids))
        except flax.errors.InvalidRngError as err:
            raise ValueError(
                f"the model asked for an RNG the trainer does not give ({err}); with dropout=False no dropout "
                f"key is passed, so also pass model_kwargs that turn dropout off (e.g. {{'train': False}})."
            ) from err

    def _check_shapes(self, state: TrainState, x: Any, y: Any, ids: Any) -> int | None:
        """The checks of a step's inputs that read their shapes, dtypes and the model only (raising
        ``TypeError``/``ValueError``); returns the number of classes the labels must lie below
        (``loss="cross_entropy"``), else None."""
        from keyfan.ensemble._train_checks import check_step_arrays, check_step_shapes

        check_step_arrays(state, x, y)
        batch = jax.tree.leaves(x)[0].shape[0] if jax.tree.leaves(x) else 0
        if ids.shape != (batch,) or not jnp.issubdtype(ids.dtype, jnp.integer):
            raise ValueError(f"ids must be ({batch},) integers, one stable id per example of x; got "
                             f"shape {ids.shape} dtype {ids.dtype}.")
        if jnp.shape(y)[:1] != (batch,):
            raise ValueError(f"y must have the batch size {batch} of x on its leading axis, got shape {jnp.shape(y)}.")
        if batch == 0 or batch % self.chunks:
            raise ValueError(f"the batch size {batch} must be a positive multiple of chunks={self.chunks}.")
        if state.ensemble.spec is not None:
            from keyfan.ensemble._inputs import check_input

            check_input("x", x, state.ensemble.spec)
        return check_step_shapes(self, state, x, y)

    def _member_group(self, members: int, *, vmapped: bool = False) -> int:
        """Members per pass of the loop over a device's members. Layout-invariant with
        ``"gemm"`` products: ``member_group`` (default 1), each member its own single-member
        program; otherwise (``vmapped``) the members of a group in one vmap (default: all)."""
        group = self.member_group
        if group is None:
            return 1 if self.layout_invariant and not vmapped else members
        if members % group:
            raise ValueError(f"member_group={group} must divide the {members} members a device holds, so that "
                             f"every group runs the same program.")
        return group

    def _run(self, state: TrainState, x: Any, y: Any, ids: jax.Array) -> tuple[TrainState, jax.Array]:
        batch = int(ids.shape[0])
        chunk = batch // self.chunks
        if self.layout_invariant and self.block_size is not None and chunk % self.block_size:
            raise ValueError(
                f"block_size={self.block_size} must divide each chunk of the batch: {batch} examples in "
                f"chunks={self.chunks} give chunks of {chunk}. Use a batch size that is a multiple of "
                f"chunks * block_size = {self.chunks * self.block_size} (or block_size=None: one block per chunk)."
            )
        elementwise = self._products(state, x, y, ids) == "elementwise"
        if self.mesh is None:
            params, opt_state, losses, step = self._step(state, x, y, ids, chunks=self.chunks, batch=batch,
                                                         elementwise=elementwise)
        else:
            params, opt_state, losses, step = self._run_on_mesh(state, x, y, ids, batch, elementwise)
        new_ens = dataclasses.replace(state.ensemble, params=params)
        return TrainState(new_ens, opt_state, step, state.weights), losses

    def _run_on_mesh(self, state: TrainState, x: Any, y: Any, ids: jax.Array,
                     batch: int, elementwise: bool) -> tuple[Any, Any, Any, Any]:
        """One single-device program per device on its block, exact copies in between (``_shard.py``).

        With the data on one device per member block, each device runs :meth:`_step` on its
        members (the one-device program). With the data split, each device computes its members'
        chunk sums (:meth:`_grads`); a member block's sums are copied to each of its devices, which
        finishes the step (:meth:`_finish`): the same per-member programs as :meth:`_step`."""
        mesh = self.mesh
        states = device_blocks(shard_members(state, mesh), mesh)
        batches = device_blocks(shard_batch((x, y, ids), mesh), mesh)
        if mesh.shape[DATA_AXIS] == 1:
            results = {pos: self._step(states[pos], *batches[pos], chunks=self.chunks, batch=batch,
                                       elementwise=elementwise) for pos in states}
        else:
            chunks = self.chunks // mesh.shape[DATA_AXIS]
            partial = {pos: self._grads(states[pos], *batches[pos], chunks=chunks, elementwise=elementwise)
                       for pos in states}
            devices = mesh.devices
            results = {}
            for (i, j), device in np.ndenumerate(devices):
                row = tuple(jax.device_put(partial[(i, jj)], device) for jj in range(devices.shape[1]))
                results[(i, j)] = self._finish(states[(i, j)], row, batch=batch, elementwise=elementwise)
        per_member = assemble({pos: r[:3] for pos, r in results.items()}, mesh, MEMBER_AXIS)
        return (*per_member, assemble({pos: r[3] for pos, r in results.items()}, mesh, None))

    # -- the programs ----------------------------------------------------------------------
    #
    # One member's step is three parts: G, its gradient (each block of examples by the
    # single-member block program, the blocks of each chunk summed by ``tree_sum``), a program of
    # its own (a branch XLA compiles apart from what is around it, see :func:`_apart`); C, the
    # mean of its chunk sums; U, the optimizer update. C and U are elementwise and write the
    # member's new state into the stacked state in place (``_in_place.written_in_place``), every
    # product rounded on its own, so their bits do not depend on the fusion around them either.
    # On one device (or with the data on one device per member block) a loop over the members
    # runs G, C, U for one member after the other (:meth:`_step`); with the data split over
    # devices, G runs on each device (:meth:`_grads`) and C, U after the copies (:meth:`_finish`).
    # Either way each part sees the same operands, so the rounding cannot depend on the arrangement.

    def _step(self, state: TrainState, x: Any, y: Any, ids: jax.Array, *, chunks: int,
              batch: int, elementwise: bool) -> tuple[PyTree, PyTree, jax.Array, jax.Array]:
        """The whole step for the members of one device: ``(params, opt_state, losses, step + 1)``;
        with ``donate``, the new parameters and optimizer state take the buffers of the old."""
        out: tuple[PyTree, PyTree, jax.Array, jax.Array] = _STEP[self.donate](
            self, *_state_parts(state), x, y, ids, chunks=chunks, batch=batch, elementwise=elementwise)
        return out

    def _lower_step(self, state: TrainState, x: Any, y: Any, ids: jax.Array) -> Any:
        """The one-device step program, lowered (for XLA's memory analysis)."""
        batch = int(ids.shape[0])
        elementwise = self._products(state, x, y, ids) == "elementwise"
        return _STEP[self.donate].lower(self, *_state_parts(state), x, y, ids, chunks=self.chunks, batch=batch,
                                        elementwise=elementwise)

    def _products(self, state: TrainState, x: Any, y: Any, ids: Any) -> str:
        """``"elementwise"`` or ``"gemm"``: the ``products=`` setting, or for ``"auto"`` the rule's
        choice for one member's block program at these shapes (see :data:`ELEMENTWISE_MAX_PRODUCTS`;
        cached per shapes). ``layout_invariant=False`` always runs ``"gemm"``."""
        if not self.layout_invariant or self.products == "gemm":
            return "gemm"
        ens = state.ensemble
        signature = (jax.tree.structure(ens.params), *[(a.shape, a.dtype) for a in jax.tree.leaves((ens.params, x, y))],
                     jnp.shape(ids), self.chunks, state.weights is None)
        choice = self._choices.get(signature)
        if choice is None:
            choice = self._choose(state, x, y, ids)
            self._choices[signature] = choice
        return choice

    def _choose(self, state: TrainState, x: Any, y: Any, ids: Any) -> str:
        ens = state.ensemble
        model = ens.model
        one = jax.tree.map(lambda a: _spec(a.shape[1:], a.dtype), ens.params)
        trainable, frozen = jax.eval_shape(model.split_trainable, one)
        key = _spec((2,), jnp.uint32) if ens.keys is None else \
            _spec(ens.keys.shape[1:], ens.keys.dtype)
        weights = None if state.weights is None else _spec(state.weights.shape[1:], state.weights.dtype)
        batch = int(jnp.shape(ids)[0])
        block = self.block_size or batch // self.chunks
        data = jax.tree.map(lambda a: _spec((block, *jnp.shape(a)[1:]), jnp.result_type(a)),
                            (x, y, ids))
        step = _spec((), jnp.int32)
        block_fn = lambda t, f, k, w, d, s: self._block_program(model, s)(t, f, k, w, *d)  # noqa: E731
        unsupported, products = assess(block_fn, trainable, frozen, key, weights, data, step)
        opt = jax.tree.map(lambda a: _spec(a.shape[1:], a.dtype), state.opt_state)
        unsupported |= assess(self.optimizer.update, trainable, opt, trainable)[0]
        if self.products == "elementwise":
            if unsupported:
                raise ValueError(f"products='elementwise' cannot keep the bits of operations "
                                 f"{', '.join(sorted(unsupported))} of this model or optimizer apart from a member "
                                 f"axis; use products='gemm' or 'auto'.")
            return "elementwise"
        return "elementwise" if not unsupported and products <= ELEMENTWISE_MAX_PRODUCTS else "gemm"

    def _step_program(self, shell: Ensemble, params: PyTree, opt_state: PyTree, weights: jax.Array | None,
                      step: jax.Array, x: Any, y: Any, ids: jax.Array, *, chunks: int,
                      batch: int, elementwise: bool) -> tuple[PyTree, PyTree, jax.Array, jax.Array]:
        state = TrainState(dataclasses.replace(shell, params=params), opt_state, step, weights)
        ens = state.ensemble
        model, members = ens.model, ens.members
        trainable, frozen = jax.vmap(model.split_trainable)(ens.params)
        keys = _member_keys(ens)
        if not self.layout_invariant:
            sums = self._vmapped_sums(state, x, y, ids, chunks)
            losses, grads = jax.vmap(functools.partial(_mean_of_chunks, batch=batch))(*sums)
            opt_state = state.opt_state
            trainable, opt_state = _map(lambda m: self._update_one(trainable, opt_state, _take(grads, m), m),
                                        jnp.arange(members))
            return jax.vmap(model.merge_trainable)(trainable, frozen), opt_state, losses, state.step + 1
        fence = _always(state.step)
        if elementwise:
            grads_of, finish = self._elementwise_parts(model, state.step, fence, x, y, ids, chunks, batch)

            def member(tr: PyTree, fr: PyTree, key: jax.Array, w: jax.Array | None, opt: PyTree) -> Any:
                values, grads = grads_of(tr, fr, key, w)
                loss, (tr, opt) = _apart(fence, finish, tr, opt, values, grads)
                return tr, opt, loss

            ops = (trainable, frozen, keys, state.weights, state.opt_state)
            trainable, opt_state, losses = _grouped_vmap(member, ops, self._member_group(members, vmapped=True))
            return jax.vmap(model.merge_trainable)(trainable, frozen), opt_state, losses, state.step + 1
        member_grads = self._member_grads(model, state.step, fence, x, y, ids, chunks)
        finish = self._finish_in_place(batch, _opaque_zero(state.step))

        def one_member(m: Any, carry: Any) -> Any:
            tr_all, opt_all, losses = carry
            values, grads = member_grads((tr_all, frozen, keys, state.weights), m)
            loss, (tr_all, opt_all) = finish((tr_all, opt_all), m, values, grads)
            return tr_all, opt_all, losses.at[m].set(loss)

        carry = (trainable, state.opt_state, jnp.zeros((members,), jnp.float32))
        trainable, opt_state, losses = _loop(members, one_member, carry, self._member_group(members))
        return jax.vmap(model.merge_trainable)(trainable, frozen), opt_state, losses, state.step + 1

    @functools.partial(jax.jit, static_argnames=("self", "chunks", "elementwise"))
    def _grads(self, state: TrainState, x: Any, y: Any, ids: jax.Array, *,
               chunks: int, elementwise: bool) -> tuple[jax.Array, PyTree]:
        """Per-member, per-chunk sums of the (weighted) losses and gradients of this device's
        chunks: ``(K, chunks)`` and trees of ``(K, chunks, *param_shape)`` (part G)."""
        if not self.layout_invariant:
            return self._vmapped_sums(state, x, y, ids, chunks)
        ens = state.ensemble
        trainable, frozen = jax.vmap(ens.model.split_trainable)(ens.params)
        ops = (trainable, frozen, _member_keys(ens), state.weights)
        if elementwise:
            grads_of, _ = self._elementwise_parts(ens.model, state.step, _always(state.step), x, y, ids, chunks,
                                                  int(ids.shape[0]))
            sums: tuple[jax.Array, PyTree] = _grouped_vmap(grads_of, ops, self._member_group(ens.members, vmapped=True))
            return sums
        member_grads = self._member_grads(ens.model, state.step, _always(state.step), x, y, ids, chunks)
        group = self._member_group(ens.members)
        index = jnp.arange(ens.members).reshape(ens.members // group, group)
        out = _map(lambda ms: _stack([member_grads(ops, m) for m in ms]), index)
        sums = jax.tree.map(lambda a: a.reshape(ens.members, *a.shape[2:]), out)
        return sums

    def _finish(self, state: TrainState, parts: tuple[tuple[jax.Array, PyTree], ...], *,
                batch: int, elementwise: bool) -> tuple[PyTree, PyTree, jax.Array, jax.Array]:
        """Parts C and U for every member from the chunk sums of every device of its member
        block (joined in order): ``(params, opt_state, losses, step + 1)``."""
        shell, params, opt_state, _, step = _state_parts(state)
        out: tuple[PyTree, PyTree, jax.Array, jax.Array] = _FINISH[self.donate](
            self, shell, params, opt_state, step, parts, batch=batch, elementwise=elementwise)
        return out

    def _finish_program(self, shell: Ensemble, params: PyTree, opt_state: PyTree, step: jax.Array,
                        parts: tuple[tuple[jax.Array, PyTree], ...], *,
                        batch: int, elementwise: bool) -> tuple[PyTree, PyTree, jax.Array, jax.Array]:
        ens = dataclasses.replace(shell, params=params)
        values = jnp.concatenate([p[0] for p in parts], axis=1)
        grads = jax.tree.map(lambda *g: jnp.concatenate(g, axis=1), *[p[1] for p in parts])
        model = ens.model
        trainable, frozen = jax.vmap(model.split_trainable)(ens.params)
        fence = _always(step)
        if elementwise:
            finish_one = self._elementwise_finish(batch, step)

            def member(tr: PyTree, opt: PyTree, v: jax.Array, g: PyTree) -> Any:
                loss, (tr, opt) = _apart(fence, finish_one, tr, opt, v, g)
                return tr, opt, loss

            ops = (trainable, opt_state, values, grads)
            trainable, opt_state, losses = _grouped_vmap(member, ops, self._member_group(ens.members, vmapped=True))
            return jax.vmap(model.merge_trainable)(trainable, frozen), opt_state, losses, step + 1

        in_place = self._finish_in_place(batch, _opaque_zero(step))

        def one_member(m: Any, carry: Any) -> Any:
            tr_all, opt_all, losses = carry
            v, g = _take((values, grads), m)
            if self.layout_invariant:
                loss, (tr_all, opt_all) = in_place((tr_all, opt_all), m, v, g)
            else:
                loss, (tr, opt) = self._finish_one(tr_all, opt_all, v, g, m, batch=batch)
                tr_all, opt_all = _put((tr_all, opt_all), (tr, opt), m)
            return tr_all, opt_all, losses.at[m].set(loss)

        carry = (trainable, opt_state, jnp.zeros((ens.members,), jnp.float32))
        trainable, opt_state, losses = _loop(ens.members, one_member, carry, self._member_group(ens.members))
        return jax.vmap(model.merge_trainable)(trainable, frozen), opt_state, losses, step + 1

    def _member_grads(self, model: Any, step: jax.Array, fence: jax.Array, x: Any, y: Any, ids: jax.Array,
                      chunks: int) -> Any:
        """Part G for ONE member: ``f(trainable, frozen, member_key, weights) -> (values (chunks,),
        grads (chunks, ...))``, each block of ``block_size`` examples by the single-member block
        program (:meth:`_block_program`, apart), the blocks of each chunk summed by ``tree_sum``."""
        block_fn = self._block_program(model, step)
        batch = int(ids.shape[0])
        block = self.block_size or batch // chunks
        n_blocks = batch // block
        data = jax.tree.map(lambda a: a.reshape(n_blocks, block, *a.shape[1:]), (x, y, ids))

        def one_block(ops: Any, m: Any, d: Any) -> Any:
            return block_fn(*_take(ops, m), *d)

        def member(ops: Any, m: Any) -> Any:
            parts = _map(lambda d: _apart(fence, one_block, ops, m, d), data)

            def per_chunk(a: jax.Array) -> jax.Array:
                return tree_sum(a.reshape(chunks, n_blocks // chunks, *a.shape[1:]), axis=1)

            return jax.tree.map(per_chunk, parts)

        return member

    def _elementwise_parts(self, model: Any, step: jax.Array, fence: jax.Array, x: Any, y: Any, ids: jax.Array,
                           chunks: int, batch: int) -> tuple[Any, Any]:
        """``products="elementwise"``: parts G and C+U for ONE member's own arrays, for a vmap
        over members. ``G(trainable, frozen, member_key, weights) -> (values (chunks,), grads
        (chunks, ...))``: each block by :func:`~keyfan.ensemble._exact.exact` of the block
        program (apart), the blocks of each chunk summed by ``tree_sum``; ``C+U(trainable,
        opt_state, values, grads) -> (loss, (trainable, opt_state))``."""
        block_fn = exact(self._block_program(model, step), _opaque_zero(step))
        n_blocks = batch // (self.block_size or batch // chunks)
        data = jax.tree.map(lambda a: a.reshape(n_blocks, a.shape[0] // n_blocks, *a.shape[1:]), (x, y, ids))

        def grads_of(tr: PyTree, fr: PyTree, key: jax.Array, w: jax.Array | None) -> Any:
            parts = _map(lambda d: _apart(fence, block_fn, tr, fr, key, w, *d), data)

            def per_chunk(a: jax.Array) -> jax.Array:
                return tree_sum(a.reshape(chunks, n_blocks // chunks, *a.shape[1:]), axis=1)

            return jax.tree.map(per_chunk, parts)

        return grads_of, self._elementwise_finish(batch, step)

    def _elementwise_finish(self, batch: int, step: jax.Array) -> Any:
        """Parts C and U for ONE member's own arrays, every float sum and product elementwise."""
        update = exact(self.optimizer.update, _opaque_zero(step))

        def finish(tr: PyTree, opt: PyTree, values: jax.Array, grads: PyTree) -> Any:
            loss, g = _mean_of_chunks(values, grads, batch=batch)
            updates, opt = update(g, opt, tr)
            return loss, (optax.apply_updates(tr, updates), opt)

        return finish

    def _vmapped_sums(self, state: TrainState, x: Any, y: Any, ids: jax.Array, chunks: int) -> tuple[jax.Array, PyTree]:
        """``layout_invariant=False``: per-member, per-chunk sums with the members of a group and
        the chunks vmapped together and XLA's backward pass summing over each chunk."""
        ens = state.ensemble
        trainable, frozen = jax.vmap(ens.model.split_trainable)(ens.params)
        members = ens.members
        group = self._member_group(members)
        block_fn = self._block_program(ens.model, state.step)
        xs, ys, idc = jax.tree.map(lambda a: a.reshape(chunks, a.shape[0] // chunks, *a.shape[1:]), (x, y, ids))
        per_chunk = jax.vmap(block_fn, in_axes=(None, None, None, None, 0, 0, 0))

        def member(tr: PyTree, fr: PyTree, key: jax.Array, w: jax.Array | None) -> Any:
            return per_chunk(tr, fr, key, w, xs, ys, idc)

        weights = state.weights
        in_axes = (0, 0, 0, None if weights is None else 0)
        split = lambda a: a.reshape(members // group, group, *a.shape[1:])  # noqa: E731
        ops = jax.tree.map(split, (trainable, frozen, _member_keys(ens), weights))
        out = jax.lax.map(lambda o: jax.vmap(member, in_axes=in_axes)(*o), ops)
        sums: tuple[jax.Array, PyTree] = jax.tree.map(lambda a: a.reshape(members, *a.shape[2:]), out)
        return sums

    def _finish_one(self, tr_all: PyTree, opt_all: PyTree, values: jax.Array, grads: PyTree, m: Any, *,
                    batch: int) -> tuple[jax.Array, tuple[PyTree, PyTree]]:
        """Parts C and U for member ``m``: its mean loss, and its parameters and optimizer state
        updated with its mean gradient, from its chunk sums ``(chunks,)`` and ``(chunks, ...)``."""
        loss, g = _mean_of_chunks(values, grads, batch=batch)
        return loss, self._update_one(tr_all, opt_all, g, m)

    def _finish_in_place(self, batch: int, zero: jax.Array) -> Any:
        """Parts C and U for member ``m``, written into the stacked state as they are computed
        (:func:`~keyfan.ensemble._in_place.written_in_place`: no member-sized buffer of the new
        state): ``f((tr_all, opt_all), m, values, grads) -> (loss, (tr_all, opt_all))`` from the
        member's chunk sums ``(chunks,)`` and ``(chunks, ...)``."""

        def one(member: tuple[PyTree, PyTree], values: jax.Array, grads: PyTree) -> Any:
            tr, opt = member
            loss, g = _mean_of_chunks(values, grads, batch=batch)
            updates, opt = self.optimizer.update(g, opt, tr)
            return loss, (optax.apply_updates(tr, updates), opt)

        return written_in_place(one, zero)

    def _update_one(self, tr_all: PyTree, opt_all: PyTree, g: PyTree, m: Any) -> tuple[PyTree, PyTree]:
        """Part U for member ``m``: the optimizer's update of its trainable parameters and state
        (read from the stacked ``tr_all``, ``opt_all``) with its mean gradient ``g``."""
        tr, opt = _take((tr_all, opt_all), m)
        updates, opt = self.optimizer.update(g, opt, tr)
        return optax.apply_updates(tr, updates), opt

    def _block_program(self, model: Any, step: jax.Array) -> Any:
        """``f(trainable, frozen, member_key, weights, x, y, ids) -> (loss_sum, grads)`` for ONE
        member on ONE block of examples: ordinary backprop of the block's (weighted) loss sum,
        each example run alone (as a batch of one) with its own dropout key."""
        loss_fn, kwargs, dropout = get_loss(self.loss), dict(self.model_kwargs), self.dropout

        def block_fn(tr: PyTree, fr: PyTree, key: jax.Array, w: jax.Array | None,
                     xb: Any, yb: Any, ib: jax.Array) -> tuple[jax.Array, PyTree]:
            # Unsigned ids and step: the same keys as the signed values (checked non-negative
            # by step), without a traced sign check, whose effect would keep the compiled step off
            # JAX's fast dispatch path (1 ms per step).
            dkeys = stream_keys(member_dropout_keys(key, _unsigned(ib), _unsigned(step))) if dropout else None

            def total(t: PyTree) -> jax.Array:
                def example_loss(xi: Any, yi: Any, ki: jax.Array | None) -> jax.Array:
                    return loss_fn(apply_one(model, model.merge_trainable(t, fr), xi, ki, **kwargs), yi)

                values = jax.vmap(example_loss, in_axes=(0, 0, 0 if dropout else None))(xb, yb, dkeys)
                return jnp.sum(values if w is None else values * w[ib])

            return jax.value_and_grad(total)(tr)

        return block_fn


def _state_parts(state: TrainState) -> tuple[Ensemble, PyTree, PyTree, jax.Array | None, jax.Array]:
    """``(shell, params, opt_state, weights, step)``: the parts a step program takes, the
    parameters apart from the rest of the ensemble (its shell) so that they can be donated."""
    ens = state.ensemble
    return dataclasses.replace(ens, params=None), ens.params, state.opt_state, state.weights, state.step


_STATICS = ("self", "chunks", "batch", "elementwise")
_STEP = {donate: jax.jit(Trainer._step_program, static_argnames=_STATICS,
                         donate_argnames=("params", "opt_state") if donate else ()) for donate in (True, False)}
"""The one-device step program, with the parameters and optimizer state donated or not."""
_FINISH = {donate: jax.jit(Trainer._finish_program, static_argnames=("self", "batch", "elementwise"),
                           donate_argnames=("params", "opt_state") if donate else ()) for donate in (True, False)}
"""Parts C and U on a device of a data-sharded mesh, donated or not."""


def _with_loss_task(ensemble: Ensemble, loss: Any) -> Ensemble:
    """``ensemble`` recording the task its named ``loss`` implies (unchanged for a callable)."""
    task = LOSS_TASKS.get(loss) if isinstance(loss, str) else None
    if task is None or ensemble.task == task:
        return ensemble
    if ensemble.task is not None:
        raise ValueError(f"loss={loss!r} trains {task} members, but the ensemble records task={ensemble.task!r}; "
                         f"use a loss for {ensemble.task!r} outputs or an ensemble made with task={task!r}.")
    return dataclasses.replace(ensemble, task=task)


def _weak(a: Any) -> Callable[[], Any]:
    """A weak reference to the array ``a``, or for None a function that returns None."""
    return (lambda: None) if a is None else weakref.ref(a)


def _never() -> bool:
    return False


def _input_signature(state: TrainState, x: Any, y: Any, ids: Any) -> tuple[Any, ...]:
    """What the checks of shapes, dtypes and the model read: the model (by identity), the
    ensemble's input spec, the bootstrap size, and the structure, types, shapes and dtypes of
    ``x``, ``y`` and ``ids``."""
    leaves, treedef = jax.tree.flatten(x)
    weights = state.weights
    return (id(state.ensemble.model), state.ensemble.spec, None if weights is None else weights.shape, type(x),
            treedef, tuple((type(a), getattr(a, "shape", None), getattr(a, "dtype", None)) for a in leaves),
            type(y), getattr(y, "shape", None), getattr(y, "dtype", None), type(ids), ids.shape, ids.dtype)


def _member_keys(ens: Ensemble) -> jax.Array:
    """The members' keys, or zeros for an ensemble without keys (trained without dropout)."""
    return ens.keys if ens.keys is not None else jnp.zeros((ens.members, 2), jnp.uint32)


def _always(step: jax.Array) -> jax.Array:
    """A predicate that is always true but that XLA cannot fold: ``step | 1`` is odd."""
    return (step | 1) != 0


def _spec(shape: Any, dtype: Any) -> Any:
    """``jax.ShapeDtypeStruct(shape, dtype)`` (an abstract array for tracing)."""
    return jax.ShapeDtypeStruct(shape, dtype)  # type: ignore[no-untyped-call]


def _opaque_zero(step: jax.Array) -> jax.Array:
    """0 as an int32 scalar the compiler cannot fold: the sign bits of the non-negative step."""
    return jax.lax.shift_right_logical(step.astype(jnp.int32), jnp.int32(31))


def _apart(fence: jax.Array, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` as a branch of a conditional on ``fence`` (always true): XLA compiles a
    branch as a computation of its own, so nothing around it fuses into it (a fused producer or
    consumer could change its rounding: a reduction emitted inside a loop, a multiply and an add
    contracted into one FMA). ``lax.optimization_barrier`` does not do this: XLA drops it before
    fusion.

    ``fn`` is traced once: the branch replays that trace (``jaxpr_as_fun``), whose equations
    are the ones ``fn`` binds, so the program is the one ``lax.cond(fence, fn, ...)`` builds
    (the same optimised HLO); tracing ``fn`` a second time for the other branch's shapes
    (``jax.eval_shape``) cost about a third of the small trainer-bench step's trace time."""
    flat, tree = jax.tree.flatten(args)
    closed, shapes = jax.make_jaxpr(lambda *a: fn(*jax.tree.unflatten(tree, a)), return_shape=True)(*flat)
    out_tree = jax.tree.structure(shapes)

    def traced(*a: Any) -> Any:
        return jax.tree.unflatten(out_tree, jaxpr_as_fun(closed)(*a))

    return jax.lax.cond(fence, traced, lambda *_: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes), *flat)


def _mean_of_chunks(values: jax.Array, grads: PyTree, *, batch: int) -> tuple[jax.Array, PyTree]:
    """Part C for ONE member: its chunk sums ``(chunks,)`` and ``(chunks, ...)`` summed by
    :func:`tree_sum` and divided by ``batch``."""
    scale = jnp.float32(1.0 / batch)
    return tree_sum(values) * scale, jax.tree.map(lambda g: tree_sum(g) * scale, grads)


def _loop(n: int, body: Any, carry: Any, unroll: int) -> Any:
    """``body(i, carry)`` for ``i`` in ``0 .. n - 1``, ``unroll`` iterations per step of the
    loop; a plain call for ``n == 1``. ``i`` is a uint32: an index that cannot be negative, so
    that a read ``a[i]`` and a write ``a.at[i].set(...)`` take ``i`` as it is (a signed index is
    wrapped by a ``select`` per use), which lets XLA fuse the read into the in-place write."""
    if n == 1:
        return body(0, carry)

    def steps(c: Any) -> Any:
        i, inner = c
        for j in range(unroll):
            inner = body(i + np.uint32(j) if j else i, inner)
        return i + np.uint32(unroll), inner

    return jax.lax.while_loop(lambda c: c[0] < np.uint32(n), steps, (np.uint32(0), carry))[1]


def _unsigned(a: jax.Array) -> jax.Array:
    """Non-negative integers as the unsigned type of their width (the same words)."""
    return a.astype(jnp.uint64 if a.dtype.itemsize == 8 else jnp.uint32)


def _take(tree: Any, i: Any) -> Any:
    """Entry ``i`` of every leaf's leading axis."""
    return jax.tree.map(lambda a: a[i], tree)


def _put(tree: Any, values: Any, i: Any) -> Any:
    """``tree`` with entry ``i`` of every leaf's leading axis replaced by ``values`` (in place
    in a loop's carry)."""
    return jax.tree.map(lambda a, v: jax.lax.dynamic_update_index_in_dim(a, v, i, 0), tree, values)


def _stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def _grouped_vmap(f: Any, ops: Any, group: int) -> Any:
    """``jax.vmap(f)(*ops)`` over the leading (member) axis, ``group`` members per step of a
    loop over the groups (all at once when ``group`` is the number of members)."""
    members = jax.tree.leaves(ops)[0].shape[0]
    if group == members:
        return jax.vmap(f)(*ops)
    split = jax.tree.map(lambda a: a.reshape(members // group, group, *a.shape[1:]), ops)
    out = _map(lambda o: jax.vmap(f)(*o), split)
    return jax.tree.map(lambda a: a.reshape(members, *a.shape[2:]), out)


def _map(f: Any, xs: Any) -> Any:
    """``lax.map(f, xs)``, but a plain call (with the axis added back) for one item: XLA inlines
    a loop of one iteration anyway, and tracing and lowering the loop cost compile time."""
    if jax.tree.leaves(xs)[0].shape[0] == 1:
        return jax.tree.map(lambda a: a[None], f(jax.tree.map(lambda a: a[0], xs)))
    return jax.lax.map(f, xs)


def _set_learning_rates(opt_state: PyTree, learning_rates: Any, k: int) -> PyTree:
    found = optax.tree_utils.tree_get_all_with_path(opt_state, "learning_rate")
    if not found:
        raise ValueError("learning_rates needs an optimizer whose learning rate is in its state: build it with "
                         "optax.inject_hyperparams, e.g. optax.inject_hyperparams(optax.adam)(learning_rate=1e-3).")
    rule = f"learning_rates must be {k} finite positive numbers, one per member (a (K,) float array or list)"
    shape, dtype = getattr(learning_rates, "shape", None), getattr(learning_rates, "dtype", None)
    got = f"dtype {dtype} and shape {tuple(shape)}" if shape is not None else f"{learning_rates!r:.60}"
    try:
        rates = np.asarray(learning_rates)
    except (TypeError, ValueError) as err:  # a typed key array, a ragged list
        raise TypeError(f"{rule}, got {type(learning_rates).__name__} {got}.") from err
    if not (np.issubdtype(rates.dtype, np.integer) or np.issubdtype(rates.dtype, np.floating)):  # bool, str, complex
        got = got if shape is not None else f"{got}, read as dtype {rates.dtype}"
        raise TypeError(f"{rule}, got {type(learning_rates).__name__} {got}.")
    rates = rates.astype(np.float64)
    if rates.shape != (k,) or not np.all(np.isfinite(rates)) or not np.all(rates > 0):
        raise ValueError(f"learning_rates must be {k} finite positive numbers, one per member; got {learning_rates!r}.")
    dtype = found[0][1].dtype
    return optax.tree_utils.tree_set(opt_state, learning_rate=jnp.asarray(rates, dtype))
