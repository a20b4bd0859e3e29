"""``shared_vmap``: a linen module written for ONE example, lifted over a batch, params shared.

The library form of the reference recipe :func:`keyfan.recipes.nn_vmap_forward`:
``flax.linen.vmap`` with ``variable_axes={"params": None}`` (one set of parameters, no batch
axis) and ``split_rngs={"params": False, "dropout": True}`` (one init, one dropout key per
example). Flax splits a stream's key with ``jax.random.split(key, B)``, which on a keyfan key
is ``kf.fan_out(key, (B,))``: example ``i`` of the lifted module is the single-example module
applied to ``x[i]`` with the key ``kf.at(key, i)`` -- bit for bit, so any example's dropout mask
can be recomputed alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import numpy as np

from keyfan.typing import InAxes, PyTree

__all__ = ["shared_vmap"]


def _names(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{name} must be a sequence of collection names (str), got {value!r}.")
    return tuple(value)


def _axes(name: str, value: object) -> None:
    """Raises ``TypeError`` unless ``value`` is an ``in_axes``/``out_axes`` spec: an int, None, or a
    (nested) tuple, list or dict of them, as ``jax.vmap`` takes (checked here, not when the lifted
    module is first called, where flax fails with an ``IndexError`` on a float)."""
    leaves = jax.tree.leaves(value, is_leaf=lambda v: v is None)
    bad = [v for v in leaves if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)))]
    if bad:
        raise TypeError(f"{name} must be an int, None, or a (nested) tuple/list/dict of them, as in jax.vmap; got "
                        f"{value!r:.80} (the entry {bad[0]!r} is a {type(bad[0]).__name__}).")


def shared_vmap(module: type[nn.Module], *, split_rngs: Sequence[str] = ("dropout",),
                shared: Sequence[str] = ("params",), in_axes: InAxes = 0, out_axes: PyTree = 0,
                axis_name: str | None = None) -> type[nn.Module]:
    """Lifts a linen module class over a batch axis with shared variables and per-example RNGs.

    Args:
      module: a ``flax.linen.Module`` subclass whose ``__call__`` takes ONE example.
      split_rngs: RNG streams split per example (each example its own key); ``"params"`` is
        never split, so the shared parameters are initialised once.
      shared: variable collections shared by all examples (no batch axis).
      in_axes: the batch axis of each ``__call__`` argument (``None`` broadcasts it), as in
        ``jax.vmap``.
      out_axes: the batch axis of the outputs.
      axis_name: optional name of the mapped axis, for collectives inside the module.

    Returns:
      A module class with the same attributes: construct it, then ``init`` and ``apply`` it on a
        batch as usual, e.g. ``apply(variables, x, rngs={"dropout": kf.key(1)})``. Its ``params``
        have the single-example shapes; example ``i``'s output equals ``module(...).apply(
        variables, x[i], rngs={"dropout": kf.at(key, i)})``.

    Raises:
      TypeError: ``module`` is not a linen module class, a name list is malformed, or
        ``in_axes``/``out_axes`` holds something other than ints and None (an axis out of range
        for the inputs is found when the lifted module is called, by flax).
      ValueError: ``"params"`` is asked to be split.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, keyfan as kf
      >>> Dense = kf.shared_vmap(nn.Dense)
      >>> layer = Dense(features=3)
      >>> x = jnp.ones((4, 5))
      >>> variables = layer.init(kf.key(0), x)
      >>> variables["params"]["kernel"].shape          # shared: no batch axis
      (5, 3)
      >>> layer.apply(variables, x).shape
      (4, 3)
    """
    if not (isinstance(module, type) and issubclass(module, nn.Module)):
        got = f"an instance of {type(module).__name__}" if isinstance(module, nn.Module) else repr(module)
        raise TypeError(f"module must be a flax.linen Module class (e.g. nn.Dense, not nn.Dense(3)), got {got}; "
                        f"pass the class and set its attributes on the lifted class: shared_vmap(nn.Dense)(3).")
    split = _names("split_rngs", split_rngs)
    _axes("in_axes", in_axes)
    _axes("out_axes", out_axes)
    shared_names = _names("shared", shared)
    if "params" in split:
        raise ValueError("split_rngs must not contain 'params': the parameters are shared, so they are initialised "
                         "once from one key; split only per-example streams such as 'dropout'.")
    rngs = {"params": False, **dict.fromkeys(split, True)}
    return nn.vmap(module, in_axes=in_axes, out_axes=out_axes, variable_axes=dict.fromkeys(shared_names),
                   split_rngs=rngs, axis_name=axis_name)
