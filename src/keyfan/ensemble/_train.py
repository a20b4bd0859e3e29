"""Training an ensemble: one vmapped, jitted step for all K members, reproducible bit for bit.

The randomness of a run is a pure function of the ensemble's key:

* member ``m``'s dropout key for example ``id`` at step ``t`` is
  ``kf.example_keys(kf.named(member_key_m, "dropout"), [id], step=t)[0]``
  (:func:`~keyfan.ensemble.dropout_keys`): the same whatever K, the batch order, the chunking
  or the device layout;
* member ``m``'s bootstrap weights are the counts of ``N`` draws from ``N`` examples with
  ``kf.named(member_key_m, "bootstrap")``: training on the weighted data is training on that
  member's bootstrap resample.

Each example runs alone (as a batch of one) with its own dropout key. With
``layout_invariant=True`` (the default) the gradient of each example is taken separately and the
per-example gradients are summed over each of ``chunks`` equal chunks of the batch (the
data-parallel unit), then over the chunks, every sum in a fixed pairwise order
(``_shard.fixed_sum``): the step gives the same bits on 1 device and on a ``(member, data)`` mesh
(``_shard.py``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.errors
import jax
import jax.numpy as jnp
import numpy as np
import optax

from keyfan._checks import as_int
from keyfan.ensemble._ensemble import Ensemble
from keyfan.ensemble._losses import get_loss
from keyfan.ensemble._per_example import apply_one, member_dropout_keys, stream_keys
from keyfan.ensemble._shard import (
    DATA_AXIS,
    MEMBER_AXIS,
    _check_mesh,
    assemble,
    check_layout,
    device_blocks,
    fixed_sum,
    shard_batch,
    shard_members,
)
from keyfan.keys import named

__all__ = ["TrainState", "Trainer", "bootstrap_weights"]

PyTree = Any


class TrainState(NamedTuple):
    """Everything a run needs to continue: a pytree, every array leaf with a member axis except
    ``step``.

    Attributes:
      ensemble: the :class:`~keyfan.Ensemble` (stacked params and member keys).
      opt_state: the optimizer state, stacked per member.
      step: int32 scalar, the number of steps taken (the dropout keys' step).
      weights: float32 ``(K, N)`` bootstrap weights per member and example id, or None.
    """

    ensemble: Ensemble
    opt_state: PyTree
    step: jax.Array
    weights: jax.Array | None


def bootstrap_weights(member_keys: jax.Array, n: Any) -> jax.Array:
    """Per-member bootstrap weights ``(K, n)`` float32: how often each example id is drawn when
    member ``m`` resamples ``n`` of ``n`` examples with replacement using
    ``kf.named(member_keys[m], "bootstrap")``. Each row sums to ``n``."""
    n = as_int("bootstrap", n, lo=1)

    def one(key: jax.Array) -> jax.Array:
        draws = jax.random.randint(named(key, "bootstrap"), (n,), 0, n)
        return jnp.zeros((n,), jnp.float32).at[draws].add(1.0)

    return jax.vmap(one)(member_keys)


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
    """A vmapped, jitted training step for every member of an ensemble at once.

    Args:
      optimizer: any ``optax.GradientTransformation``; its state is stacked per member. For
        per-member learning rates build it with ``optax.inject_hyperparams``.
      loss: ``"cross_entropy"`` (integer labels), ``"mse"``, ``"gaussian_nll"`` or a callable
        ``loss(output, target) -> scalar`` for ONE example.
      model_kwargs: keyword arguments for the model during training, e.g. ``{"train": True}``
        for a linen module whose dropout depends on a ``train`` flag.
      dropout: give each (member, step, example) its own dropout key (default True).
      chunks: split each batch into this many equal chunks (a multiple of the mesh's data axis).
      mesh: a ``(member, data)`` mesh from :func:`~keyfan.ensemble.make_mesh`, or None.
      layout_invariant: sum per-example gradients in a fixed pairwise order (default), so the
        step gives the same bits on 1 device and on any mesh (with at least two members per
        device). ``False`` lets XLA's backward pass sum over each chunk's examples: about twice
        as fast for members of some size (2-64-64-2 MLPs, batch 64; no faster at 2-16-16-2),
        bit for bit reproducible on one layout, but the bits change with the number of members
        or chunks a device holds.

    Example:
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

    def __post_init__(self) -> None:
        if not isinstance(self.optimizer, optax.GradientTransformation):
            raise TypeError(f"optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), "
                            f"got {type(self.optimizer).__name__}.")
        get_loss(self.loss)
        object.__setattr__(self, "chunks", as_int("chunks", self.chunks, lo=1))
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
        """
        if not isinstance(ensemble, Ensemble):
            raise TypeError(f"ensemble must be a kf.Ensemble, got {type(ensemble).__name__}.")
        if ensemble.keys is None and (self.dropout or bootstrap is not None):
            raise ValueError("this ensemble has no member keys; pass keys= to Ensemble.stack, or use "
                             "Trainer(dropout=False) without bootstrap=.")
        trainable, _ = jax.vmap(ensemble.model.split_trainable)(ensemble.params)
        opt_state = jax.vmap(self.optimizer.init)(trainable)
        if learning_rates is not None:
            opt_state = _set_learning_rates(opt_state, learning_rates, ensemble.members)
        weights = None if bootstrap is None else bootstrap_weights(ensemble.keys, bootstrap)
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
        from keyfan.ensemble._train_checks import check_step_arrays, check_step_inputs

        check_step_arrays(state, x, y)
        batch = jax.tree.leaves(x)[0].shape[0] if jax.tree.leaves(x) else 0
        ids = ids if isinstance(ids, (np.ndarray, jax.Array)) else np.asarray(ids)
        if ids.shape != (batch,) or not jnp.issubdtype(ids.dtype, jnp.integer):
            raise ValueError(f"ids must be ({batch},) integers, one stable id per example of x; got "
                             f"shape {ids.shape} dtype {ids.dtype}.")
        if jnp.shape(y)[:1] != (batch,):
            raise ValueError(f"y must have the batch size {batch} of x on its leading axis, got shape {jnp.shape(y)}.")
        if batch == 0 or batch % self.chunks:
            raise ValueError(f"the batch size {batch} must be a positive multiple of chunks={self.chunks}.")
        if state.weights is not None and isinstance(ids, np.ndarray) and ids.size and \
                (ids.min() < 0 or ids.max() >= state.weights.shape[1]):
            raise ValueError(f"ids must lie in [0, {state.weights.shape[1]}) (the bootstrap dataset size), "
                             f"got [{ids.min()}, {ids.max()}].")
        if state.ensemble.spec is not None:
            from keyfan.ensemble._inputs import check_input

            check_input("x", x, state.ensemble.spec)
        check_step_inputs(self, state, x, y, ids)
        try:
            return self._run(state, x, y, ids if isinstance(ids, jax.Array) else jnp.asarray(ids))
        except flax.errors.InvalidRngError as err:
            raise ValueError(
                f"the model asked for an RNG the trainer does not give ({err}); with dropout=False no dropout "
                f"key is passed, so also pass model_kwargs that turn dropout off (e.g. {{'train': False}})."
            ) from err

    def _run(self, state: TrainState, x: Any, y: Any, ids: jax.Array) -> tuple[TrainState, jax.Array]:
        batch = int(ids.shape[0])
        if self.mesh is None:
            # Two programs, as on a mesh: fused into one, XLA may round the update differently.
            parts = self._grads(state, x, y, ids, chunks=self.chunks)
            params, opt_state, losses, step = self._update(state.ensemble, state.opt_state, state.step, (parts,),
                                                           batch=batch)
        else:
            params, opt_state, losses, step = self._run_on_mesh(state, x, y, ids, batch)
        ens = state.ensemble
        new_ens = Ensemble(params, ens.keys, ens.model, ens.spec)
        return TrainState(new_ens, opt_state, step, state.weights), losses

    def _run_on_mesh(self, state: TrainState, x: Any, y: Any, ids: jax.Array,
                     batch: int) -> tuple[Any, Any, Any, Any]:
        """One single-device program per device on its block, exact copies in between (``_shard.py``)."""
        mesh = self.mesh
        states = device_blocks(shard_members(state, mesh), mesh)
        batches = device_blocks(shard_batch((x, y, ids), mesh), mesh)
        chunks = self.chunks // mesh.shape[DATA_AXIS]
        partial = {pos: self._grads(states[pos], *batches[pos], chunks=chunks) for pos in states}
        devices = mesh.devices
        results = {}
        for (i, j), device in np.ndenumerate(devices):
            row = tuple(jax.device_put(partial[(i, jj)], device) for jj in range(devices.shape[1]))
            block = states[(i, j)]
            results[(i, j)] = self._update(block.ensemble, block.opt_state, block.step, row, batch=batch)
        per_member = assemble({pos: r[:3] for pos, r in results.items()}, mesh, MEMBER_AXIS)
        return (*per_member, assemble({pos: r[3] for pos, r in results.items()}, mesh, None))

    @functools.partial(jax.jit, static_argnames=("self", "chunks"))
    def _grads(self, state: TrainState, x: Any, y: Any, ids: jax.Array, *, chunks: int) -> tuple[jax.Array, PyTree]:
        """Per-member, per-chunk sums of the (weighted) per-example losses and gradients:
        ``(K, chunks)`` and trees of ``(K, chunks, *param_shape)``."""
        ens = state.ensemble
        model, loss_fn, kwargs = ens.model, get_loss(self.loss), dict(self.model_kwargs)
        xs, ys, idc = jax.tree.map(lambda a: a.reshape(chunks, a.shape[0] // chunks, *a.shape[1:]), (x, y, ids))
        trainable, frozen = jax.vmap(model.split_trainable)(ens.params)
        keys = ens.keys if ens.keys is not None else jnp.zeros((ens.members, 2), jnp.uint32)
        weights = state.weights

        def example_loss(tr: PyTree, fr: PyTree, key: jax.Array | None, xi: Any, yi: Any) -> jax.Array:
            out = apply_one(model, model.merge_trainable(tr, fr), xi, key, **kwargs)
            return loss_fn(out, yi)

        def chunk(tr: PyTree, fr: PyTree, key: jax.Array, w: jax.Array | None,
                  xc: Any, yc: Any, ic: jax.Array) -> tuple[jax.Array, PyTree]:
            dkeys = stream_keys(member_dropout_keys(key, ic, state.step)) if self.dropout else None

            key_axis = 0 if self.dropout else None
            if self.layout_invariant:
                per_example = jax.vmap(jax.value_and_grad(example_loss), in_axes=(None, None, key_axis, 0, 0))
                values, grads = per_example(tr, fr, dkeys, xc, yc)
                if w is not None:
                    wi = w[ic]
                    values = values * wi
                    grads = jax.tree.map(lambda g: g * wi.reshape(-1, *(1,) * (g.ndim - 1)), grads)
                return fixed_sum(values), jax.tree.map(fixed_sum, grads)

            def total(t: PyTree) -> jax.Array:
                values = jax.vmap(example_loss, in_axes=(None, None, key_axis, 0, 0))(t, fr, dkeys, xc, yc)
                return fixed_sum(values if w is None else values * w[ic])

            return jax.value_and_grad(total)(tr)

        def member(tr: PyTree, fr: PyTree, key: jax.Array, w: jax.Array | None) -> Any:
            return jax.vmap(chunk, in_axes=(None, None, None, None, 0, 0, 0))(tr, fr, key, w, xs, ys, idc)

        in_axes = (0, 0, 0, None if weights is None else 0)
        return jax.vmap(member, in_axes=in_axes)(trainable, frozen, keys, weights)

    @functools.partial(jax.jit, static_argnames=("self", "batch"))
    def _update(self, ens: Ensemble, opt_state: PyTree, step: jax.Array, parts: tuple[tuple[jax.Array, PyTree], ...],
                *, batch: int) -> tuple[PyTree, PyTree, jax.Array, jax.Array]:
        """Joins the chunk blocks (in order), sums over chunks, applies the optimizer, counts the step."""
        sums = jnp.concatenate([p[0] for p in parts], axis=1)
        grads = jax.tree.map(lambda *g: jnp.concatenate(g, axis=1), *[p[1] for p in parts])
        scale = jnp.float32(1.0 / batch)
        grads = jax.tree.map(lambda g: fixed_sum(g, axis=1) * scale, grads)
        losses = fixed_sum(sums, axis=1) * scale
        model = ens.model
        trainable, frozen = jax.vmap(model.split_trainable)(ens.params)

        def update(tr: PyTree, opt: PyTree, g: PyTree) -> tuple[PyTree, PyTree]:
            updates, opt = self.optimizer.update(g, opt, tr)
            return optax.apply_updates(tr, updates), opt

        trainable, opt_state = jax.vmap(update)(trainable, opt_state, grads)
        return jax.vmap(model.merge_trainable)(trainable, frozen), opt_state, losses, step + 1


def _set_learning_rates(opt_state: PyTree, learning_rates: Any, k: int) -> PyTree:
    found = optax.tree_utils.tree_get_all_with_path(opt_state, "learning_rate")
    if not found:
        raise ValueError("learning_rates needs an optimizer whose learning rate is in its state: build it with "
                         "optax.inject_hyperparams, e.g. optax.inject_hyperparams(optax.adam)(learning_rate=1e-3).")
    rates = np.asarray(learning_rates, dtype=np.float64)
    if rates.shape != (k,) or not np.all(np.isfinite(rates)) or not np.all(rates > 0):
        raise ValueError(f"learning_rates must be {k} finite positive numbers, one per member; got {learning_rates!r}.")
    dtype = found[0][1].dtype
    return optax.tree_utils.tree_set(opt_state, learning_rate=jnp.asarray(rates, dtype))
