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
import re
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from keyfan._checks import as_bool, as_int
from keyfan._keyarg import check_key
from keyfan.ensemble._inputs import InputSpec, check_input, input_spec
from keyfan.ensemble._models import Model, NNXModel, as_model
from keyfan.ensemble._per_example import apply_per_example, dropout_keys
from keyfan.ensemble._predict import predict
from keyfan.ensemble._stacking import check_member_keys, check_same_structure, member_index
from keyfan.ensemble._tasks import check_task
from keyfan.keys import fan_out

__all__ = ["Ensemble"]

PyTree = Any


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
      task: what the members' outputs are (static): ``"classification"`` (logits),
        ``"regression"`` (point predictions) or ``"gaussian"`` (mean-variance pairs), or None when
        unknown. :class:`~keyfan.ensemble.Trainer` records it from its loss
        (``"cross_entropy"``, ``"mse"``, ``"gaussian_nll"``); :meth:`predict` then summarises
        accordingly, and refuses a different ``task=``.

    Examples:
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
    task: str | None = None

    def __post_init__(self) -> None:
        if self.task is not None:
            check_task(self.task)

    # -- pytree ----------------------------------------------------------------------------

    def tree_flatten_with_keys(self) -> tuple[Any, Any]:
        children = ((jax.tree_util.GetAttrKey("params"), self.params),
                    (jax.tree_util.GetAttrKey("keys"), self.keys))
        return children, (self.model, self.spec, self.task)

    @classmethod
    def tree_unflatten(cls, aux: Any, children: Any) -> Ensemble:
        return cls(children[0], children[1], *aux)

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def init(cls, model: Any, key: Any, *, members: Any, sample_input: Any = None,
             task: str | None = None) -> Ensemble:
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
          task: optional, what the members output (``"classification"``, ``"regression"`` or
            ``"gaussian"``), recorded for :meth:`predict`; a trainer records it from its loss.

        Returns:
          An :class:`Ensemble` whose member ``i`` equals ``model`` initialised alone with
            ``kf.at(key, i)`` (bitwise; on the ``"threefry"`` stream for every K), and whose
            member keys are ``kf.fan_out(key, (K,))``.

        Raises:
          TypeError: ``model`` is of an unknown kind, an NNX constructor cannot be called with the
            rngs alone or does not return an ``nnx.Module``, or ``key`` is not a key.
          ValueError: ``members < 1``, ``sample_input`` is missing or does not fit the model,
            or ``task`` is not one of the three.
        """
        if task is not None:
            check_task(task)  # before the init work, not after it
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
            adapter = _bind(adapter, key)
        keys = fan_out(key, (members,))
        abstract = _fit(lambda: jax.eval_shape(adapter.init, keys[0], sample_input), adapter, sample_input)
        if not jax.tree.leaves(abstract):
            raise ValueError(f"model's init returned no parameter arrays ({abstract!r:.80}); an ensemble stacks "
                             f"each member's parameters, so init must return at least one array.")
        if sample_input is not None:
            _fit(lambda: jax.eval_shape(adapter.apply, abstract, sample_input), adapter, sample_input)
        params = _vmapped_init(adapter)(keys, sample_input)
        return cls(params, keys, adapter, spec, task)

    @classmethod
    def stack(cls, members: Sequence[Any], *, model: Any, keys: Any = None,
              task: str | None = None) -> Ensemble:
        """Stacks single models' parameters into an ensemble (``torch.func.stack_module_state``).

        Args:
          members: a non-empty sequence of single-model objects of the model's kind (linen
            variables dicts, NNX modules, or plain params), all of one structure and shapes.
          model: the model (any kind :meth:`init` accepts).
          keys: optional member keys, ``(K,)`` typed keys, ``uint32[K, 2]`` or a sequence of keys.
          task: optional, what the members output (see :meth:`init`).

        Returns:
          An ensemble whose ``member(i)`` equals ``members[i]``.

        Raises:
          TypeError: ``members`` is not a sequence (a list or tuple), or ``model`` is not a model.
          ValueError: ``members`` is empty, or its members differ in structure or shapes.
        """
        adapter = as_model(model)
        if isinstance(members, (str, bytes)) or not isinstance(members, Sequence):
            raise TypeError(f"members must be a non-empty list of single models, got {type(members).__name__}.")
        if not members:
            raise ValueError("members must be a non-empty list of single models, got an empty one.")
        if isinstance(adapter, NNXModel) and adapter.graphdef is None:
            from flax import nnx

            adapter = dataclasses.replace(adapter, graphdef=nnx.split(members[0], nnx.Param, ...)[0])
        trees = [adapter.from_member(m) for m in members]
        check_same_structure("members", trees)
        params = jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)
        return cls(params, check_member_keys(keys, len(trees)), adapter, task=task)

    @classmethod
    def concatenate(cls, ensembles: Sequence[Ensemble]) -> Ensemble:
        """Joins ensembles of one model and task along the member axis (keys are kept, or all None)."""
        if isinstance(ensembles, (str, bytes)) or not isinstance(ensembles, Sequence) or not ensembles or \
                not all(isinstance(e, Ensemble) for e in ensembles):
            got = [type(e).__name__ for e in ensembles] if isinstance(ensembles, (list, tuple)) else \
                type(ensembles).__name__
            raise TypeError(f"ensembles must be a non-empty list of kf.Ensemble, got {got}.")
        first = ensembles[0]
        for i, other in enumerate(ensembles[1:], start=1):
            if other.model != first.model:
                raise ValueError(f"ensembles[{i}] holds a different model than ensembles[0]; only "
                                 f"ensembles of one model can be joined.")
            if other.task != first.task:
                raise ValueError(f"ensembles[{i}] has task={other.task!r} and ensembles[0] task={first.task!r}; "
                                 f"only ensembles of one task can be joined.")
        check_same_structure("ensembles", [jax.tree.map(lambda a: a[0], e.params) for e in ensembles])
        params = jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *[e.params for e in ensembles])
        with_keys = [e.keys is not None for e in ensembles]
        keys = jnp.concatenate([e.keys for e in ensembles]) if all(with_keys) else None
        return dataclasses.replace(first, params=params, keys=keys)

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
        index = member_index(idx, self.members)
        params = jax.tree.map(lambda a: a[index], self.params)
        keys = None if self.keys is None else self.keys[index]
        return dataclasses.replace(self, params=params, keys=keys)

    def __repr__(self) -> str:
        task = "" if self.task is None else f", task={self.task!r}"
        return f"Ensemble(kind={self.model.kind!r}, members={self.members}, keys={self.keys is not None}{task})"

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
        per_member = as_bool("per_member", per_member)
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

    def predict(self, x: Any, *, task: str | None = None, mesh: Any = None, **kwargs: Any) -> Any:
        """The ensemble's predictive summary; see :func:`keyfan.ensemble.predict`."""
        return predict(self, x, task=task, mesh=mesh, **kwargs)


def _bind(adapter: NNXModel, key: jax.Array) -> NNXModel:
    """``adapter.bind(key)``; a constructor that cannot be called with the rngs alone is a
    ``TypeError`` about ``model`` (it never sees ``sample_input``, so the input is not to blame)."""
    try:
        return adapter.bind(key)
    except TypeError as err:
        if "nnx.Module" in str(err):
            raise
        call = "make(rngs=nnx.Rngs(key))" if adapter.rngs_keyword else "make(nnx.Rngs(key))"
        raise TypeError(f"model: the NNX constructor is called as {call} and failed ({type(err).__name__}: {err}); "
                        f"pass a constructor that takes only the rngs, e.g. functools.partial(nnx.Linear, 3, 2) or "
                        f"kf.ensemble.nnx_model(lambda rngs: nnx.Linear(3, 2, rngs=rngs)).") from err


def _fit(thunk: Any, model: Model, sample_input: Any) -> Any:
    """Runs a shape check; a failure inside the model becomes a ValueError about the input."""
    try:
        return thunk()
    except (TypeError, ValueError) as err:
        if isinstance(err, TypeError) and "nnx.Module" in str(err):
            raise
        missing = re.search(r"missing \d+ required (?:positional|keyword-only) arguments?: (.+)$", str(err))
        if isinstance(err, TypeError) and missing:
            raise ValueError(
                f"the {model.kind} model's __call__ needs {missing.group(1)}, which Ensemble.init does not pass "
                f"(it calls the model on sample_input alone): give it a default, e.g. `train: bool = False`, and "
                f"pass it at training time with Trainer(model_kwargs={{'train': True}})."
            ) from err
        shapes = jax.tree.map(lambda a: f"{jnp.shape(a)} {jnp.result_type(a)}", sample_input)
        raise ValueError(
            f"sample_input {shapes} does not fit the {model.kind} model: {type(err).__name__}: {err}"
            f" -- pass a batch (B, ...) shaped like the model's real inputs."
        ) from err
