"""What every transform shares: the key check, the batch/event split of an input, and the
fallback that batches a per-example function through ``kf.vmap``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array, lax

from keyfan._checks import as_int
from keyfan._keyarg import check_key
from keyfan._vmap import vmap

__all__ = ["floating", "over_batch", "settled", "single_key", "split_batch", "split_shape"]


def single_key(key: Any, stream: str | None) -> Array:
    """``key`` as a scalar typed key of its keyfan stream (raw and JAX keys read on ``stream``),
    so every draw below is pinned to the stream whatever JAX's global flags say."""
    arg = check_key("key", key, stream=stream)
    if arg.kind == "keyfan":
        return arg.value
    return jax.random.wrap_key_data(arg.data, impl=arg.stream.spec)


def split_shape(name: str, shape: tuple[int, ...], batch_axes: Any, *, event_rank: int | None = None,
                event_name: str = "") -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``shape`` split into its ``batch_axes`` leading batch axes and the per-example rest."""
    n = as_int("batch_axes", batch_axes, lo=0)
    if n > len(shape):
        raise ValueError(
            f"batch_axes={n} but {name} has only {len(shape)} axes (shape {shape}); batch_axes "
            f"counts the leading axes that index examples."
        )
    if event_rank is not None and len(shape) - n != event_rank:
        raise ValueError(
            f"{name} must be {event_name} per example: with batch_axes={n} it needs "
            f"{n + event_rank} axes, got shape {shape}. For a batch of shape (B, H, W, C) pass "
            f"batch_axes=1."
        )
    return shape[:n], shape[n:]


def split_batch(name: str, x: Any, batch_axes: Any, *, event_rank: int | None = None,
                event_name: str = "") -> tuple[Array, tuple[int, ...], tuple[int, ...]]:
    """``x`` as an array, with its shape split as by :func:`split_shape`."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        try:
            x = jnp.asarray(x)
        except TypeError as err:
            raise TypeError(f"{name} must be an array, got {type(x).__name__}.") from err
    batch, event = split_shape(name, tuple(x.shape), batch_axes, event_rank=event_rank,
                               event_name=event_name)
    return x, batch, event


def settled(values: Array) -> Array:
    """``values`` computed on their own, before any arithmetic that uses them.

    XLA fuses a draw with the arithmetic after it and may then round differently (a multiply
    and an add contracted into one FMA, constants folded across the draw's last step). keyfan's
    batched samplers compute their values in a branch of their own, so without this barrier a
    single-example draw (fused) and the same draw in a batch (not fused) could differ in the
    last bit after ``x + scale * z``. With it, both compute the draw's canonical bits first.
    """
    return lax.optimization_barrier(values)


def floating(name: str, x: Array) -> None:
    """Raises ``TypeError`` unless ``x`` has a floating dtype."""
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{name} must have a floating dtype, got {x.dtype}; convert it first, e.g. "
            f"{name}.astype(jnp.float32) / 255 for uint8 images."
        )


def over_batch(fn: Callable[[Array, Array], Array], key: Array, x: Array, *, batch_axes: int) -> Array:
    """``fn(key, x)`` of one example, batched over the leading ``batch_axes`` axes of ``x``:
    element ``(i, j, ...)`` gets ``kf.at(key, (i, j, ...))`` (nested ``kf.vmap``, "different")."""
    for _ in range(batch_axes):
        fn = vmap(fn, in_axes=(None, 0), randomness="different")
    return fn(key, x)
