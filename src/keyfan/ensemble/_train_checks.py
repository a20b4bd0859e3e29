"""Checks of a training step's inputs that the step itself cannot make: each turns a silent wrong
answer (labels outside the classes train on NaN or garbage, a vector loss is summed, dropout is
off because the model's ``train`` flag was not set) into an error naming the argument.

One example's output shape comes from ``jax.eval_shape`` of the model (no compilation), cached
per trainer, model and input signature, so a run pays for it once.
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from keyfan._checks import is_traced
from keyfan.ensemble._losses import LOSSES, get_loss
from keyfan.ensemble._per_example import apply_one

__all__ = ["check_model_kwargs", "check_step_arrays", "check_step_inputs", "check_step_shapes", "check_step_values"]

_FLAGS = {"train": False, "training": False, "deterministic": True}
"""``__call__`` flags that switch dropout, with the default that turns it OFF."""

_outputs: dict[tuple[Any, ...], Any] = {}
_signatures: dict[int, tuple[Any, inspect.Signature | None]] = {}
"""Per model (by identity; the model is kept with its entry, so its id is not reused): the
signature of what the trainer calls."""


def _call_signature(model: Any) -> inspect.Signature | None:
    """The signature of what the trainer calls: a linen module's ``__call__``, an NNX class's
    ``__call__``, or an ``apply_fn``."""
    if getattr(model, "module", None) is not None:
        call = model.module.__call__
    elif getattr(model, "apply_fn", None) is not None:
        call = model.apply_fn
    elif isinstance(getattr(model, "make", None), type):
        call = model.make.__call__
    else:
        return None
    try:
        return inspect.signature(call)
    except (TypeError, ValueError):
        return None


def check_model_kwargs(model: Any, model_kwargs: Any, dropout: bool) -> None:
    """Raises ``ValueError`` when dropout keys are given (``dropout=True``) to a model whose
    ``__call__`` has a ``train``/``training``/``deterministic`` flag left at the default that
    turns dropout off: the trainer would train without dropout, silently."""
    if not dropout:
        return
    signature = _signatures.get(id(model), (None, None))
    if signature[0] is not model:  # read once per model (inspect.signature costs ~30 us a step)
        if len(_signatures) > 256:
            _signatures.clear()
        signature = _signatures[id(model)] = (model, _call_signature(model))
    signature = signature[1]
    if signature is None:
        return
    for name, off in _FLAGS.items():
        param = signature.parameters.get(name)
        if param is None or name in model_kwargs or param.default is inspect.Parameter.empty:
            continue
        if param.default is off:
            on = not off
            raise ValueError(
                f"the model's __call__ takes {name}= (default {off}, which turns dropout off), but model_kwargs "
                f"does not set it: training would run without dropout. Pass model_kwargs={{{name!r}: {on}}}, or "
                f"model_kwargs={{{name!r}: {off}}} with Trainer(dropout=False) to train without it.")


def _signature(tree: Any) -> tuple[Any, ...]:
    leaves, treedef = jax.tree.flatten(tree)
    return (treedef, tuple((tuple(np.shape(a)), str(getattr(a, "dtype", type(a).__name__))) for a in leaves))


def _first_entry(a: Any) -> jax.ShapeDtypeStruct:
    """The abstract value of ``a[0]`` (shape without the leading axis, dtype, weak type)."""
    if np.ndim(a) == 0:
        return a[0]  # type: ignore[no-any-return]  # raises as indexing a scalar does
    dtype = a.dtype if hasattr(a, "dtype") else jnp.result_type(a)
    return jax.ShapeDtypeStruct(np.shape(a)[1:], dtype, weak_type=bool(getattr(a, "weak_type", False)))


def _example_output(trainer: Any, state: Any, x: Any) -> Any:
    """``ShapeDtypeStruct`` of one example's model output, or None when it cannot be traced here
    (the step itself then reports the problem)."""
    model = state.ensemble.model
    cache_key = (id(trainer), id(model), _signature(x))
    if cache_key in _outputs:
        return _outputs[cache_key]
    # One member's parameters and one example as shapes only: slicing the arrays (``a[0]``)
    # compiled and ran one small program per leaf, 0.2 s of the small trainer-bench's first step.
    params = jax.tree.map(_first_entry, state.ensemble.params)
    x0 = jax.tree.map(_first_entry, x)
    key = jax.random.key(0) if trainer.dropout else None
    try:
        out = jax.eval_shape(lambda p, xi: apply_one(model, p, xi, key, **dict(trainer.model_kwargs)), params, x0)
    except Exception:  # the step raises its own, clearer error for models that cannot run
        out = None
    if len(_outputs) > 256:
        _outputs.clear()
    _outputs[cache_key] = out
    return out


def _concrete(a: Any) -> np.ndarray | None:
    if is_traced(a):
        return None
    return np.asarray(a)


def check_step_arrays(state: Any, x: Any, y: Any) -> None:
    """Raises ``TypeError`` for a Python list or tuple given as ``x`` (unless the ensemble was
    initialised on such a pytree) or ``y``, before anything reads their shapes."""
    spec = state.ensemble.spec
    leaf_input = spec is None or spec.treedef.num_leaves == 1
    if isinstance(x, (list, tuple)) and leaf_input:
        raise TypeError(f"x must be an array (B, ...), got a Python {type(x).__name__}; pass jnp.asarray(x).")
    if isinstance(y, (list, tuple)):
        raise TypeError(f"y must be an array (B, ...), got a Python {type(y).__name__}; pass jnp.asarray(y).")


def check_step_inputs(trainer: Any, state: Any, x: Any, y: Any, ids: Any) -> None:
    """Raises ``TypeError``/``ValueError`` naming ``x``, ``y``, ``ids`` or the loss for inputs the
    step would accept and train on wrongly. ``ids`` and ``y`` are already known to have the batch
    size of ``x``. The checks of shapes, dtypes and the model's flags
    (:func:`check_step_shapes`) depend on the inputs' signature only; the checks of values
    (:func:`check_step_values`) run on every call."""
    check_step_values(trainer, state, y, ids, check_step_shapes(trainer, state, x, y))


def check_step_shapes(trainer: Any, state: Any, x: Any, y: Any) -> int | None:
    """The checks of :func:`check_step_inputs` that read shapes, dtypes and the model only; returns
    the number of classes for ``loss="cross_entropy"`` (for :func:`check_step_values`), else None."""
    check_model_kwargs(state.ensemble.model, trainer.model_kwargs, trainer.dropout)
    out = _example_output(trainer, state, x)
    if out is None or not isinstance(out, jax.ShapeDtypeStruct):
        return None
    y_shape, y_dtype = tuple(jnp.shape(y)), jnp.result_type(y)
    y0 = jax.ShapeDtypeStruct(y_shape[1:], y_dtype)
    loss = trainer.loss
    if isinstance(loss, str) and loss == "cross_entropy":
        _check_labels(out, y_shape, y_dtype)
        return int(out.shape[0])
    if isinstance(loss, str) and loss == "mse":
        try:
            fits = np.broadcast_shapes(out.shape, y0.shape) == out.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"y has shape {y_shape}: with loss='mse' each target must broadcast to the model's "
                             f"output of shape {out.shape} per example, so y should be (B, *{out.shape}), or (B,) "
                             f"for a single output.")
    elif isinstance(loss, str) and loss == "gaussian_nll":
        if not out.shape or out.shape[-1] != 2:
            raise ValueError(f"loss='gaussian_nll' needs a model output (..., 2) per example (mean, raw scale), got "
                             f"{out.shape}.")
        if int(np.prod(y0.shape)) != int(np.prod(out.shape[:-1])):
            raise ValueError(f"y has shape {y_shape}: with loss='gaussian_nll' each target must have the "
                             f"{out.shape[:-1]} values of the output's means.")
    if loss in LOSSES:
        return None
    try:
        value = jax.eval_shape(get_loss(loss), out, y0)
    except Exception:
        return None  # the step raises the loss's own error
    if not isinstance(value, jax.ShapeDtypeStruct) or value.shape != ():
        shape = getattr(value, "shape", type(value).__name__)
        raise ValueError(f"loss must return a scalar for ONE example (loss(output, target) -> ()), got shape "
                         f"{shape} for an output {out.shape} and target {y0.shape}; reduce it (e.g. jnp.sum).")
    return None


def check_step_values(trainer: Any, state: Any, y: Any, ids: Any, classes: int | None) -> None:
    """The checks of :func:`check_step_inputs` that read values: ``ids`` non-negative (and below
    the bootstrap dataset size), labels in ``[0, classes)`` (``classes`` from
    :func:`check_step_shapes`; None: no label check)."""
    host_ids = _concrete(ids)
    if host_ids is not None and host_ids.size:
        low, high = host_ids.min(), host_ids.max()
        if np.issubdtype(host_ids.dtype, np.signedinteger) and low < 0:
            raise ValueError(f"ids must be non-negative example ids, got a minimum of {low}.")
        if state.weights is not None and high >= state.weights.shape[1]:
            raise ValueError(f"ids must lie in [0, {state.weights.shape[1]}) (the bootstrap dataset size), got "
                             f"[{low}, {high}].")
    if classes is None:
        return
    labels = _concrete(y)
    if labels is not None and labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"y must hold class labels in [0, {classes}) (the model has {classes} outputs), got labels "
                         f"in [{labels.min()}, {labels.max()}]; a label outside trains on NaN or on another class.")


def _check_labels(out: jax.ShapeDtypeStruct, y_shape: tuple[int, ...], y_dtype: Any) -> None:
    if len(out.shape) != 1:
        raise ValueError(f"loss='cross_entropy' needs logits (C,) per example; the model gives {out.shape}.")
    classes = out.shape[0]
    if not jnp.issubdtype(y_dtype, jnp.integer) or y_dtype == jnp.bool_:
        hint = " (one-hot labels: pass y.argmax(-1))" if len(y_shape) == 2 else ""
        raise TypeError(f"y must be integer class labels (B,) in [0, {classes}) with loss='cross_entropy', got "
                        f"dtype {y_dtype} and shape {y_shape}{hint}.")
    if len(y_shape) != 1:
        raise ValueError(f"y must be integer class labels of shape (B,) with loss='cross_entropy', got shape "
                         f"{y_shape}.")
