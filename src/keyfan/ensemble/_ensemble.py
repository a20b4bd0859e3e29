"""``Ensemble``: K models' parameters stacked on a leading member axis, as one pytree.

Indexing, stacking and slicing are tree maps over the member axis (Equinox's ensembling trick,
as a container). The guarantee (DESIGN §2.6, tested bitwise): member ``i`` of
``Ensemble.init(model, key, members=K, ...)`` equals the model initialised alone with
``kf.at(key, i)``, for every ``K`` -- so growing an ensemble from 4 to 16 members keeps the
first 4 -- and its dropout masks are those of that single model with the same member key.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from keyfan._checks import as_int
from keyfan._keyarg import check_key
from keyfan.ensemble._inputs import InputSpec, check_input, input_spec
from keyfan.ensemble._models import Model, NNXModel, as_model
from keyfan.keys import example_keys, fan_out, named

__all__ = ["Ensemble", "apply_per_example", "dropout_keys", "member_dropout_keys"]

PyTree = Any


def dropout_keys(member_keys: jax.Array, ids: Any, step: Any = None) -> jax.Array:
    """Per-member, per-example dropout keys: ``(member, step, example id) -> key``.

    Member ``m``'s key for example ``ids[j]`` at step ``t`` is
    ``kf.example_keys(kf.named(member_keys[m], "dropout"), ids, step=t)[j]``: it depends on the
    member's own key, the step and the example's stable id only, never on K, the batch size, the
    order of the batch or the device layout.

    Args:
      member_keys: ``(K,)`` keys (typed) or ``uint32[K, 2]`` raw keys.
      ids: integer example ids, shape ``(B,)``.
      step: optional training step (int or traced integer scalar).

    Returns:
      Keys of shape ``(K, B)`` (raw: ``uint32[K, B, 2]``), of the same kind as ``member_keys``.
    """
    ids = ids if isinstance(ids, jax.Array) else np.asarray(ids)
    return jax.vmap(lambda k: member_dropout_keys(k, ids, step))(member_keys)


def member_dropout_keys(member_key: jax.Array, ids: Any, step: Any = None) -> jax.Array:
    """One member's dropout keys ``(B,)`` for example ``ids`` at ``step`` (see :func:`dropout_keys`)."""
    return example_keys(named(member_key, "dropout"), ids, step=step)


def native_keys(keys: jax.Array) -> tuple[jax.Array, bool]:
    """``keys`` as JAX's own ``threefry2x32`` typed keys, and the ``jax_threefry_partitionable``
    value under which JAX's Threefry gives exactly the keys' stream.

    keyfan's streams are JAX's Threefry bit for bit (``"threefry"`` is the partitionable one,
    ``"threefry-legacy"`` the other), so a model drawing from the native keys under that flag
    draws the same bits. The native lowering is much cheaper inside a model's gradient: XLA
    fuses keyfan's elementwise Threefry into every consumer of a dropout mask (recomputing the
    hash per use), while JAX's Threefry is computed once.
    """
    arg = check_key("keys", keys, batched=True)
    return jax.random.wrap_key_data(arg.data, impl="threefry2x32"), not arg.stream.size_dependent


def apply_one(model: Model, params: PyTree, xi: Any, key: jax.Array | None, partitionable: bool,
              **kwargs: Any) -> Any:
    """The model on ONE example ``xi`` (run as a batch of one) with its own dropout key."""
    with jax.threefry_partitionable(partitionable):
        out = model.apply(params, jax.tree.map(lambda a: a[None], xi), key=key, **kwargs)
    return jax.tree.map(lambda a: a[0], out)


def apply_per_example(model: Model, params: PyTree, x: Any, keys: jax.Array | None, **kwargs: Any) -> Any:
    """One model on a batch ``x`` ``(B, ...)``, one example at a time (as a batch of one) with
    its own key ``keys[j]`` (or no key when ``keys`` is None), under ``vmap``. Example ``j``'s
    output therefore depends on ``x[j]`` and ``keys[j]`` only, whatever the batch."""
    partitionable = True
    if keys is not None:
        keys, partitionable = native_keys(keys)
    single = functools.partial(apply_one, model, params, partitionable=partitionable, **kwargs)
    return jax.vmap(lambda xi, ki: single(xi, ki), in_axes=(0, None if keys is None else 0))(x, keys)


@functools.lru_cache(maxsize=64)
def _vmapped_init(model: Model) -> Any:
    return jax.jit(jax.vmap(model.init, in_axes=(0, None)))


def _leaves_size(params: PyTree) -> int:
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError("an ensemble needs at least one parameter array; the model has none.")
    return int(jnp.shape(leaves[0])[0])


@jax.tree_util.register_pytree_with_keys_class
@dataclasses.dataclass(frozen=True, eq=False)
class Ensemble:
    """K models of one architecture, parameters stacked on a leading member axis.

    Attributes:
      params: the stacked parameters: every leaf has shape ``(K, *leaf_shape)``. Linen: the
        variables dict; NNX: ``(param_state, rest_state)``; plain functions: ``init_fn``'s pytree.
      keys: the ``(K,)`` member keys (``kf.fan_out(key, (K,))`` after :meth:`init`), or None when
        stacked from trained models without keys. Dropout keys derive from them.
      model: the model adapter (static).
      spec: per-example input shapes and dtypes recorded from ``sample_input`` (static), or None.

    Example:
      >>> import flax.linen as nn, jax.numpy as jnp, keyfan as kf
      >>> x = jnp.ones((5, 3))
      >>> ens = kf.Ensemble.init(nn.Dense(2), kf.key(0), members=4, sample_input=x)
      >>> ens(x).shape
      (4, 5, 2)
      >>> y0 = nn.Dense(2).apply(ens.member(0), x)   # a plain single model's variables
      >>> bool((y0 == ens(x)[0]).all())
      True
    """

    params: PyTree
    keys: jax.Array | None
    model: Model
    spec: InputSpec | None = None

    # -- pytree ----------------------------------------------------------------------------

    def tree_flatten_with_keys(self) -> tuple[Any, Any]:
        children = ((jax.tree_util.GetAttrKey("params"), self.params),
                    (jax.tree_util.GetAttrKey("keys"), self.keys))
        return children, (self.model, self.spec)

    @classmethod
    def tree_unflatten(cls, aux: Any, children: Any) -> Ensemble:
        return cls(children[0], children[1], *aux)

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def init(cls, model: Any, key: Any, *, members: Any, sample_input: Any = None) -> Ensemble:
        """Initialises K members in ONE vmapped, jitted ``init``.

        Args:
          model: a ``flax.linen.Module`` instance, an ``nnx.Module`` class (or a
            ``functools.partial`` of one, or ``kf.ensemble.nnx_model(make)``), or a pair
            ``(init_fn, apply_fn)`` with ``init_fn(key, sample_input) -> params``.
          key: one key (``kf.key(seed)``, ``jax.random.key`` or raw ``PRNGKey`` data).
          members: K, an int >= 1.
          sample_input: a batch ``(B, ...)`` shaped like the real inputs (any B >= 1); required
            for linen and plain functions, optional for NNX (then used to check the forward
            pass). Later inputs must match its per-example shape and dtype.

        Returns:
          An :class:`Ensemble` whose member ``i`` equals ``model`` initialised alone with
          ``kf.at(key, i)`` (bitwise; on the ``"threefry"`` stream for every K), and whose
          member keys are ``kf.fan_out(key, (K,))``.

        Raises:
          TypeError: ``model`` is of an unknown kind, or ``key`` is not a key.
          ValueError: ``members < 1``, ``sample_input`` is missing or does not fit the model.
        """
        adapter = as_model(model)
        members = as_int("members", members, lo=1)
        key = check_key("key", key).value
        spec = None
        if sample_input is None:
            if adapter.needs_sample_input:
                raise ValueError(
                    f"sample_input is required for a {adapter.kind} model: pass a batch shaped like the "
                    f"real inputs, e.g. sample_input=jnp.ones((1, in_features))."
                )
        else:
            spec = input_spec("sample_input", sample_input)
        if isinstance(adapter, NNXModel):
            adapter = _fit(lambda: adapter.bind(key), adapter, sample_input)
        keys = fan_out(key, (members,))
        abstract = _fit(lambda: jax.eval_shape(adapter.init, keys[0], sample_input), adapter, sample_input)
        if sample_input is not None:
            _fit(lambda: jax.eval_shape(adapter.apply, abstract, sample_input), adapter, sample_input)
        params = _vmapped_init(adapter)(keys, sample_input)
        return cls(params, keys, adapter, spec)

    @classmethod
    def stack(cls, members: Sequence[Any], *, model: Any, keys: Any = None) -> Ensemble:
        """Stacks single models' parameters into an ensemble (``torch.func.stack_module_state``).

        Args:
          members: a non-empty sequence of single-model objects of the model's kind (linen
            variables dicts, NNX modules, or plain params), all of one structure and shapes.
          model: the model (any kind :meth:`init` accepts).
          keys: optional member keys, ``(K,)`` typed keys, ``uint32[K, 2]`` or a sequence of keys.

        Returns:
          An ensemble whose ``member(i)`` equals ``members[i]``.
        """
        adapter = as_model(model)
        if isinstance(members, (str, bytes)) or not isinstance(members, Sequence) or not members:
            raise ValueError(f"members must be a non-empty list of single models, got {type(members).__name__}.")
        if isinstance(adapter, NNXModel) and adapter.graphdef is None:
            from flax import nnx

            adapter = dataclasses.replace(adapter, graphdef=nnx.split(members[0], nnx.Param, ...)[0])
        trees = [adapter.from_member(m) for m in members]
        _check_same_structure("members", trees)
        params = jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)
        return cls(params, _check_member_keys(keys, len(trees)), adapter)

    @classmethod
    def concatenate(cls, ensembles: Sequence[Ensemble]) -> Ensemble:
        """Joins ensembles of one model along the member axis (keys are kept, or all None)."""
        if not ensembles or not all(isinstance(e, Ensemble) for e in ensembles):
            raise TypeError("ensembles must be a non-empty list of kf.Ensemble.")
        first = ensembles[0]
        for i, other in enumerate(ensembles[1:], start=1):
            if other.model != first.model:
                raise ValueError(f"ensembles[{i}] holds a different model than ensembles[0]; only "
                                 f"ensembles of one model can be joined.")
        _check_same_structure("ensembles", [jax.tree.map(lambda a: a[0], e.params) for e in ensembles])
        params = jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *[e.params for e in ensembles])
        with_keys = [e.keys is not None for e in ensembles]
        keys = jnp.concatenate([e.keys for e in ensembles]) if all(with_keys) else None
        return cls(params, keys, first.model, first.spec)

    # -- members ---------------------------------------------------------------------------

    @property
    def members(self) -> int:
        """K, the number of members."""
        return _leaves_size(self.params)

    def __len__(self) -> int:
        return self.members

    def member(self, i: Any) -> Any:
        """Member ``i`` as a plain single model: linen variables (use ``module.apply``), an
        ``nnx.Module``, or the plain params of ``init_fn``. ``i`` may be negative."""
        k = self.members
        i = as_int("i", i, lo=-k, hi=k) % k
        return self.model.member(jax.tree.map(lambda a: a[i], self.params))

    def member_key(self, i: Any) -> jax.Array:
        """Member ``i``'s key (``kf.at(key, i)`` for an ensemble made by :meth:`init`)."""
        if self.keys is None:
            raise ValueError("this ensemble has no member keys (it was stacked without keys=).")
        k = self.members
        return self.keys[as_int("i", i, lo=-k, hi=k) % k]

    def unstack(self) -> list[Any]:
        """``[member(0), ..., member(K - 1)]``; ``Ensemble.stack`` inverts it."""
        return [self.member(i) for i in range(self.members)]

    def __getitem__(self, idx: Any) -> Ensemble:
        """A sub-ensemble: ``idx`` is a slice, an integer index array, or a boolean mask of length K."""
        index = _member_index(idx, self.members)
        params = jax.tree.map(lambda a: a[index], self.params)
        keys = None if self.keys is None else self.keys[index]
        return Ensemble(params, keys, self.model, self.spec)

    def __repr__(self) -> str:
        return f"Ensemble(kind={self.model.kind!r}, members={self.members}, keys={self.keys is not None})"

    # -- use -------------------------------------------------------------------------------

    def apply(self, x: Any, *, per_member: bool = False, ids: Any = None, step: Any = None,
              **kwargs: Any) -> Any:
        """Runs every member: ``(K, B, ...)`` outputs.

        Args:
          x: a batch ``(B, ...)`` given to every member, or with ``per_member=True`` one batch
            per member, ``(K, B, ...)``. Per-example shape and dtype must match ``sample_input``.
          per_member: see ``x``.
          ids: optional ``(B,)`` integer example ids. When given, each member runs each example
            with its own dropout key (:func:`dropout_keys` of the member keys, ``ids`` and
            ``step``), one example at a time under ``vmap``; when None, no key is passed
            (deterministic).
          step: the step the dropout keys are drawn at (with ``ids``).
          **kwargs: passed to the model (e.g. ``train=True`` for a linen module).

        Returns:
          The stacked outputs, leading axis K.
        """
        k = self.members
        if self.spec is not None:
            check_input("x", x, self.spec, members=k if per_member else None)
        x_axis = 0 if per_member else None
        if ids is None:
            return jax.vmap(lambda p, xb: self.model.apply(p, xb, **kwargs), in_axes=(0, x_axis))(self.params, x)
        if self.keys is None:
            raise ValueError("ids= needs member keys, and this ensemble has none; pass keys= to Ensemble.stack.")
        ids = ids if isinstance(ids, jax.Array) else np.asarray(ids)
        batch = jax.tree.leaves(x)[0].shape[1 if per_member else 0]
        if ids.shape != (batch,):
            raise ValueError(f"ids must have shape ({batch},), one id per example of x, got {ids.shape}.")
        keys = dropout_keys(self.keys, ids, step)
        one = functools.partial(apply_per_example, self.model, **kwargs)
        return jax.vmap(one, in_axes=(0, x_axis, 0))(self.params, x, keys)

    __call__ = apply

    def predict(self, x: Any, *, task: str = "regression", mesh: Any = None, **kwargs: Any) -> Any:
        """The ensemble's predictive summary; see :func:`keyfan.ensemble.predict`."""
        from keyfan.ensemble._predict import predict

        return predict(self, x, task=task, mesh=mesh, **kwargs)


def _fit(thunk: Any, model: Model, sample_input: Any) -> Any:
    """Runs a shape check; a failure inside the model becomes a ValueError about the input."""
    try:
        return thunk()
    except (TypeError, ValueError) as err:
        if isinstance(err, TypeError) and "nnx.Module" in str(err):
            raise
        shapes = jax.tree.map(lambda a: f"{jnp.shape(a)} {jnp.result_type(a)}", sample_input)
        raise ValueError(
            f"sample_input {shapes} does not fit the {model.kind} model: {type(err).__name__}: {err}"
            f" -- pass a batch (B, ...) shaped like the model's real inputs."
        ) from err


def _check_same_structure(name: str, trees: list[PyTree]) -> None:
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


def _check_member_keys(keys: Any, k: int) -> jax.Array | None:
    if keys is None:
        return None
    if isinstance(keys, (list, tuple)):
        kinds = [check_key(f"keys[{i}]", key) for i, key in enumerate(keys)]
        keys = kinds[0].wrap(jnp.stack([kind.data for kind in kinds]))
    arg = check_key("keys", keys, batched=True)
    if arg.shape != (k,):
        raise ValueError(f"keys must hold one key per member, shape ({k},), got {arg.shape}.")
    return arg.value


def _member_index(idx: Any, k: int) -> Any:
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
