"""Model adapters: one small interface over Flax linen, Flax NNX and plain ``(init, apply)`` pairs.

An :class:`Ensemble` never branches on the kind of model it holds: it talks to an adapter with
four pure functions (``init``, ``apply``, ``member``, ``from_member``) and a trainable/frozen
split. :func:`as_model` turns what the user passed into an adapter, once, at the API boundary.

Conventions (the same for every kind):

* ``init(key, sample_input)`` returns one model's parameters as a pytree of arrays.
* ``apply(params, x, key=None, **kwargs)`` runs the model on a batch ``x``. ``key`` is the
  dropout (and any other stochastic layer's) key: linen gets ``rngs={"dropout": key}``, NNX
  modules are reseeded with ``key`` on every RNG stream they hold and put in training view
  (``deterministic=False``; without a key they run with ``deterministic=True``), plain functions
  receive ``key=key``.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["FunctionalModel", "LinenModel", "Model", "NNXModel", "as_model", "nnx_model"]

PyTree = Any


class Model(abc.ABC):
    """The interface an :class:`~keyfan.Ensemble` uses; see the module docstring.

    Four pure functions and a trainable/frozen split, the same for every kind of model:
    ``init(key, sample_input)`` gives one model's parameters (a pytree of arrays);
    ``apply(params, x, key=None, **kwargs)`` runs it on a batch with an optional dropout key;
    ``member``/``from_member`` convert to and from the kind's single-model object (inverses of
    each other); ``split_trainable``/``merge_trainable`` separate what the optimizer sees
    (inverses of each other). Subclass it to ensemble a kind keyfan does not know; an instance
    passes through :func:`as_model` unchanged. Its methods never mutate the adapter.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp
      >>> from keyfan.ensemble import Model, as_model
      >>> model = as_model(nn.Dense(2))
      >>> isinstance(model, Model), as_model(model) is model
      (True, True)
      >>> params = model.init(jax.random.key(0), jnp.ones((5, 3)))
      >>> model.merge_trainable(*model.split_trainable(params)) == params
      True
      >>> model.apply(params, jnp.ones((5, 3))).shape
      (5, 2)
    """

    kind: str = "model"
    needs_sample_input: bool = True

    @abc.abstractmethod
    def init(self, key: jax.Array, sample_input: Any) -> PyTree:
        """One model's parameters, initialised from ``key``."""

    @abc.abstractmethod
    def apply(self, params: PyTree, x: Any, key: jax.Array | None = None, **kwargs: Any) -> Any:
        """The model on the batch ``x``, with the dropout ``key`` (or deterministic without one)."""

    def member(self, params: PyTree) -> Any:
        """One member's parameters as the single-model object of this kind."""
        return params

    def from_member(self, single: Any) -> PyTree:
        """The inverse of :meth:`member`."""
        return single

    def split_trainable(self, params: PyTree) -> tuple[PyTree, PyTree]:
        """``(trainable, frozen)``; the optimizer sees only ``trainable``."""
        return params, None

    def merge_trainable(self, trainable: PyTree, frozen: PyTree) -> PyTree:
        return trainable


@dataclasses.dataclass(frozen=True)
class LinenModel(Model):
    """A ``flax.linen.Module``: params are its variables dict (``{"params": ..., ...}``).

    ``member`` gives the variables dict, usable as ``module.apply(variables, x)``. Only the
    ``"params"`` collection is trained; other collections are carried unchanged.

    ``apply`` is exactly ``module.apply(params, x, rngs={"dropout": key}, **kwargs)`` (no
    ``rngs`` without a key): outputs keep the module's shapes and dtypes. Constructing it with
    anything but a linen module instance raises a ``TypeError`` naming ``module``.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp
      >>> from keyfan.ensemble import LinenModel, as_model
      >>> model = as_model(nn.Dense(2))
      >>> isinstance(model, LinenModel), model.kind
      (True, 'linen')
      >>> x = jnp.ones((5, 3))
      >>> variables = model.init(jax.random.key(0), x)
      >>> jax.tree.map(jnp.shape, variables)
      {'params': {'bias': (2,), 'kernel': (3, 2)}}
      >>> bool((model.apply(variables, x) == nn.Dense(2).apply(variables, x)).all())
      True
      >>> trainable, frozen = model.split_trainable(variables)
      >>> sorted(trainable), frozen
      (['bias', 'kernel'], {})
    """

    module: nn.Module
    kind: str = "linen"

    def __post_init__(self) -> None:
        if not isinstance(self.module, nn.Module):
            raise TypeError(f"module must be a flax.linen Module instance (e.g. nn.Dense(3)), got "
                            f"{type(self.module).__name__} {self.module!r:.60}.")

    def init(self, key: jax.Array, sample_input: Any) -> PyTree:
        return dict(self.module.init(key, sample_input))

    def apply(self, params: PyTree, x: Any, key: jax.Array | None = None, **kwargs: Any) -> Any:
        rngs = None if key is None else {"dropout": key}
        return self.module.apply(params, x, rngs=rngs, **kwargs)

    def member(self, params: PyTree) -> PyTree:
        return params

    def from_member(self, single: Any) -> PyTree:
        return dict(single)

    def split_trainable(self, params: PyTree) -> tuple[PyTree, PyTree]:
        frozen = {name: value for name, value in params.items() if name != "params"}
        return params.get("params", {}), frozen

    def merge_trainable(self, trainable: PyTree, frozen: PyTree) -> PyTree:
        return {"params": trainable, **frozen}


@dataclasses.dataclass(frozen=True)
class FunctionalModel(Model):
    """A plain pair: ``init_fn(key, sample_input) -> params`` and ``apply_fn(params, x, **kw)``.

    When a dropout key is given, it is passed as ``apply_fn(params, x, key=key, **kw)``;
    without one, ``key`` is not passed at all. Every parameter is trainable (nothing frozen);
    ``init`` and ``apply`` return exactly what ``init_fn`` and ``apply_fn`` return. A
    non-callable ``init_fn`` or ``apply_fn`` raises a ``TypeError`` naming it.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from keyfan.ensemble import FunctionalModel, as_model
      >>> def init_fn(key, sample_input):
      ...     return {"w": jax.random.normal(key, (sample_input.shape[-1], 2))}
      >>> def apply_fn(params, x, key=None):
      ...     return x @ params["w"] if key is None else x @ params["w"] + 1.0
      >>> model = as_model((init_fn, apply_fn))
      >>> isinstance(model, FunctionalModel), model.kind
      (True, 'functional')
      >>> x = jnp.ones((5, 3))
      >>> params = model.init(jax.random.key(0), x)
      >>> model.apply(params, x).shape
      (5, 2)
      >>> bool((model.apply(params, x, key=jax.random.key(1)) == x @ params["w"] + 1.0).all())
      True
    """

    init_fn: Callable[..., PyTree]
    apply_fn: Callable[..., Any]
    kind: str = "functional"

    def __post_init__(self) -> None:
        for name, form in (("init_fn", "init_fn(key, sample_input) -> params"),
                           ("apply_fn", "apply_fn(params, x, **kwargs) -> output")):
            value = getattr(self, name)
            if not callable(value):
                raise TypeError(f"{name} must be a callable {form}, got {type(value).__name__}.")

    def init(self, key: jax.Array, sample_input: Any) -> PyTree:
        return self.init_fn(key, sample_input)

    def apply(self, params: PyTree, x: Any, key: jax.Array | None = None, **kwargs: Any) -> Any:
        if key is not None:
            kwargs["key"] = key
        return self.apply_fn(params, x, **kwargs)


@dataclasses.dataclass(frozen=True)
class NNXModel(Model):
    """An NNX module given by its constructor ``make(rngs) -> nnx.Module``.

    Params are ``(param_state, rest_state)``: the ``nnx.Param`` variables (trained) and every
    other variable (RNG streams, batch statistics; carried unchanged). ``member`` merges them
    back into a live ``nnx.Module``. ``graphdef`` is filled in by :meth:`bind` at init.

    ``apply`` with a key reseeds every RNG stream from it and runs the module in training view
    (``deterministic=False``); without a key it runs with ``deterministic=True``. It is pure:
    the module built from ``params`` is never written back. ``from_member`` is the inverse of
    ``member`` (it raises a ``TypeError`` for anything but an ``nnx.Module``); a non-callable
    ``make`` raises a ``TypeError`` naming it.

    Examples:
      >>> import jax, jax.numpy as jnp, keyfan as kf
      >>> from flax import nnx
      >>> from keyfan.ensemble import NNXModel, nnx_model
      >>> model = nnx_model(lambda rngs: nnx.Linear(3, 2, rngs=rngs)).bind(jax.random.key(0))
      >>> isinstance(model, NNXModel), model.kind
      (True, 'nnx')
      >>> params = model.init(jax.random.key(0), None)   # (param_state, rest_state)
      >>> member = model.member(params)
      >>> type(member).__name__, model.apply(params, jnp.ones((5, 3))).shape
      ('Linear', (5, 2))
      >>> bool((model.apply(params, jnp.ones((5, 3))) == member(jnp.ones((5, 3)))).all())
      True
      >>> jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), model.from_member(member), params))
      True
    """

    make: Callable[..., nnx.Module]
    graphdef: Any = None
    rngs_keyword: bool = False
    """Call ``make(rngs=...)`` (module classes) rather than ``make(...)``."""
    kind: str = "nnx"
    needs_sample_input: bool = False

    def __post_init__(self) -> None:
        if not callable(self.make):
            raise TypeError(f"make must be a callable make(rngs) -> nnx.Module, got {type(self.make).__name__}.")

    def _build(self, key: jax.Array) -> nnx.Module:
        rngs = nnx.Rngs(key)
        module = self.make(rngs=rngs) if self.rngs_keyword else self.make(rngs)
        _check_nnx_module(module)
        return module

    def bind(self, key: jax.Array) -> NNXModel:
        """The adapter with its ``graphdef``, found by an abstract (free) construction."""
        abstract = nnx.eval_shape(lambda: self._build(key))
        graphdef, _, _ = nnx.split(abstract, nnx.Param, ...)
        return dataclasses.replace(self, graphdef=graphdef)

    def init(self, key: jax.Array, sample_input: Any) -> PyTree:
        _, params, rest = nnx.split(self._build(key), nnx.Param, ...)
        return params, rest

    def _module(self, params: PyTree) -> nnx.Module:
        return nnx.merge(self.graphdef, *params)

    def apply(self, params: PyTree, x: Any, key: jax.Array | None = None, **kwargs: Any) -> Any:
        if key is not None:
            params = (params[0], _reseeded(params[1], key))
        module = nnx.view(self._module(params), deterministic=key is None, raise_if_not_found=False)
        return module(x, **kwargs)

    def member(self, params: PyTree) -> nnx.Module:
        return self._module(params)

    def from_member(self, single: Any) -> PyTree:
        if not isinstance(single, nnx.Module):
            raise TypeError(f"an NNX ensemble's members are nnx.Module objects, got {type(single).__name__}.")
        _, params, rest = nnx.split(single, nnx.Param, ...)
        return params, rest

    def split_trainable(self, params: PyTree) -> tuple[PyTree, PyTree]:
        return params[0], params[1]

    def merge_trainable(self, trainable: PyTree, frozen: PyTree) -> PyTree:
        return trainable, frozen


def _reseeded(rest: PyTree, key: jax.Array) -> PyTree:
    """``rest`` with every RNG stream reseeded from ``key``, as ``nnx.reseed(module, tag=key)``
    does for each stream tag, computed on the state (pure: no module is mutated)."""
    new_key = nnx.Rngs(key)()

    def reseed(variable: Any) -> Any:
        if isinstance(variable, nnx.RngKey):
            return variable.replace(value=new_key)
        if isinstance(variable, nnx.RngCount):
            return variable.replace(value=jnp.zeros_like(variable.get_value()))
        return variable

    return jax.tree.map(reseed, rest, is_leaf=lambda v: isinstance(v, nnx.Variable))


def _check_nnx_module(module: Any) -> None:
    if not isinstance(module, nnx.Module):
        raise TypeError(
            f"model: an NNX constructor must return an nnx.Module, got {type(module).__name__}; "
            f"pass make(rngs) -> nnx.Module, e.g. functools.partial(MLP, 2, 16, 2)."
        )


def nnx_model(make: Callable[[nnx.Rngs], nnx.Module]) -> NNXModel:
    """Wraps an NNX constructor ``make(rngs) -> nnx.Module`` for :meth:`Ensemble.init`.

    Needed only when ``make`` is not an ``nnx.Module`` subclass or a ``functools.partial`` of
    one (those are recognised directly).

    Guarantee: nothing is built here (``make`` is first called by :meth:`Ensemble.init`);
    member ``i`` of the ensemble is ``make(nnx.Rngs(kf.at(key, i)))``, so its parameters have
    the shapes and dtypes ``make`` gives them, stacked on a leading ``(K,)`` axis.

    Args:
      make: a callable taking ``nnx.Rngs`` and returning one module.

    Returns:
      An :class:`NNXModel` for ``make`` (called positionally as ``make(rngs)``).

    Raises:
      TypeError: ``make`` is not callable. (If it returns something other than an
        ``nnx.Module``, :meth:`Ensemble.init` raises a ``TypeError`` saying what to pass.)

    Examples:
      >>> from flax import nnx
      >>> import keyfan as kf
      >>> model = kf.ensemble.nnx_model(lambda rngs: nnx.Linear(3, 2, rngs=rngs))
      >>> ens = kf.Ensemble.init(model, kf.key(0), members=4)
      >>> ens.members
      4
      >>> ens.member(0).kernel[...].shape, ens.member(0).kernel[...].dtype
      ((3, 2), dtype('float32'))
      >>> alone = nnx.Linear(3, 2, rngs=nnx.Rngs(kf.at(kf.key(0), 2)))   # member 2, built alone
      >>> bool((ens.member(2).kernel[...] == alone.kernel[...]).all())
      True
    """
    if not callable(make):
        raise TypeError(f"make must be a callable make(rngs) -> nnx.Module, got {type(make).__name__}.")
    return NNXModel(make)


def _is_nnx_class(obj: Any) -> bool:
    while isinstance(obj, functools.partial):
        obj = obj.func
    return isinstance(obj, type) and issubclass(obj, nnx.Module)


_KINDS = (
    "a flax.linen Module instance (e.g. nn.Dense(3)); an NNX module class or functools.partial of one "
    "(called as make(rngs=nnx.Rngs(key))), or kf.ensemble.nnx_model(make); or a pair (init_fn, apply_fn)"
)


def as_model(model: object) -> Model:
    """The adapter for ``model``, or a ``TypeError`` that lists the kinds accepted.

    Args:
      model: a :class:`Model`; a ``flax.linen.Module`` instance; an ``nnx.Module`` subclass or a
        ``functools.partial`` of one (called with ``rngs=``); or a pair ``(init_fn, apply_fn)``
        of callables, ``init_fn(key, sample_input) -> params`` and
        ``apply_fn(params, x, key=None, **kwargs) -> output``.

    Returns:
      A :class:`LinenModel`, :class:`NNXModel` or :class:`FunctionalModel` (a :class:`Model`
        as is).

    Raises:
      TypeError: for anything else, naming the accepted kinds (an NNX instance or a linen class
        get a message saying what to pass instead).

    Examples:
      >>> import flax.linen as nn
      >>> from keyfan.ensemble import as_model
      >>> type(as_model(nn.Dense(3))).__name__
      'LinenModel'
    """
    if isinstance(model, Model):
        return model
    if isinstance(model, nn.Module):
        return LinenModel(model)
    if _is_nnx_class(model):
        return NNXModel(model, rngs_keyword=True)
    if isinstance(model, nnx.Module):
        raise TypeError(
            f"model is an NNX module instance ({type(model).__name__}); an ensemble needs to build K of "
            f"them from K keys, so pass the constructor instead: {type(model).__name__} itself, "
            f"functools.partial({type(model).__name__}, ...) or kf.ensemble.nnx_model(lambda rngs: ...)."
        )
    if isinstance(model, tuple) and len(model) == 2 and all(callable(f) for f in model):
        return FunctionalModel(*model)
    if isinstance(model, type) and issubclass(model, nn.Module):
        raise TypeError(
            f"model is the linen class {model.__name__}, not an instance; pass {model.__name__}(...) "
            f"with its attributes set."
        )
    raise TypeError(f"model must be {_KINDS}; got {type(model).__name__} {model!r:.80}.")
