"""Per-example randomness inside an ensemble: dropout keys and one-example application.

Member ``m``'s dropout key for example ``id`` at step ``t`` is
``kf.example_keys(kf.named(member_key_m, "dropout"), [id], step=t)[0]``, and each example runs
alone (as a batch of one) with its key, so its output depends on its input and key only --
never on K, the batch size, the batch order or the device layout.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
from jax.typing import ArrayLike

from keyfan._keyarg import check_key
from keyfan.ensemble._arrays import member_keys_arg
from keyfan.ensemble._models import Model
from keyfan.keys import example_keys, named
from keyfan.typing import KeyLike

__all__ = ["apply_one", "apply_per_example", "dropout_keys", "member_dropout_keys", "stream_keys"]

PyTree = Any


def dropout_keys(member_keys: KeyLike, ids: ArrayLike, step: ArrayLike | None = None) -> jax.Array:
    """Per-member, per-example dropout keys: ``(member, step, example id) -> key``.

    Member ``m``'s key for example ``ids[j]`` at step ``t`` is
    ``kf.example_keys(kf.named(member_keys[m], "dropout"), ids, step=t)[j]``: it depends on the
    member's own key, the step and the example's stable id only, never on K, the batch size, the
    order of the batch or the device layout.

    Args:
      member_keys: ``(K,)`` keys (typed) or ``uint32[K, 2]`` raw keys.
      ids: integer example ids, shape ``(B,)``, non-negative (a NumPy array or list is accepted;
        ids of any shape ``S`` give keys ``(K, *S)``).
      step: optional training step (int or traced integer scalar).

    Returns:
      Keys of shape ``(K, B)`` (raw: ``uint32[K, B, 2]``), of the same kind as ``member_keys``.

    Raises:
      TypeError: ``member_keys`` is not keys (the message names ``member_keys`` and shows its
        shape and dtype), or ``ids`` is not of an integer dtype.
      ValueError: ``member_keys`` is a single key or a grid of keys rather than ``(K,)`` keys,
        an id is negative, or ``step`` is not a whole number.

    Examples:
      >>> import jax, jax.numpy as jnp, keyfan as kf
      >>> from keyfan.ensemble import dropout_keys
      >>> member_keys = jax.vmap(lambda m: kf.at(kf.key(0), m))(jnp.arange(3))   # K=3
      >>> keys = dropout_keys(member_keys, jnp.arange(4), step=2)
      >>> keys.shape
      (3, 4)
      >>> same = kf.example_keys(kf.named(member_keys[1], "dropout"), jnp.arange(4), step=2)
      >>> bool((jax.random.key_data(keys[1]) == jax.random.key_data(same)).all())
      True
      >>> other = dropout_keys(member_keys, jnp.array([3, 1]), step=2)   # another batch: same id, same key
      >>> bool((jax.random.key_data(other[:, 0]) == jax.random.key_data(keys[:, 3])).all())
      True
      >>> dropout_keys(jax.random.split(jax.random.PRNGKey(0), 3), jnp.arange(4)).dtype   # raw in, raw out
      dtype('uint32')
    """
    member_keys_arg("member_keys", member_keys)
    ids = ids if isinstance(ids, jax.Array) else np.asarray(ids)
    return jax.vmap(lambda k: member_dropout_keys(k, ids, step))(member_keys)


def member_dropout_keys(member_key: jax.Array, ids: Any, step: Any = None) -> jax.Array:
    """One member's dropout keys ``(B,)`` for example ``ids`` at ``step`` (see :func:`dropout_keys`)."""
    return example_keys(named(member_key, "dropout"), ids, step=step)


def stream_keys(keys: jax.Array) -> jax.Array:
    """``keys`` as typed keys of their keyfan stream (raw and ``jax.random.key`` keys are read on
    ``"threefry"``), so a model drawing from them (``nn.Dropout``, ``nnx.Dropout``) draws the
    stream's bits whatever JAX's global ``jax_threefry_partitionable`` flag says."""
    arg = check_key("keys", keys, batched=True)
    return arg.value if arg.kind == "keyfan" else jax.random.wrap_key_data(arg.data, impl=arg.stream.spec)


def apply_one(model: Model, params: PyTree, xi: Any, key: jax.Array | None, **kwargs: Any) -> Any:
    """The model on ONE example ``xi`` (run as a batch of one) with its own dropout key."""
    out = model.apply(params, jax.tree.map(lambda a: a[None], xi), key=key, **kwargs)
    return jax.tree.map(lambda a: a[0], out)


def apply_per_example(model: Model, params: PyTree, x: Any, keys: jax.Array | None, **kwargs: Any) -> Any:
    """One model on a batch ``x`` ``(B, ...)``, one example at a time (as a batch of one) with
    its own key ``keys[j]`` (or no key when ``keys`` is None), under ``vmap``. Example ``j``'s
    output therefore depends on ``x[j]`` and ``keys[j]`` only, whatever the batch."""
    if keys is not None:
        keys = stream_keys(keys)
    single = functools.partial(apply_one, model, params, **kwargs)
    return jax.vmap(lambda xi, ki: single(xi, ki), in_axes=(0, None if keys is None else 0))(x, keys)
