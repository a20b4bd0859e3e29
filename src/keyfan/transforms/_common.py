"""What every transform shares: the key check, the batch/event split of an input, and the
fallback that batches a per-example function through ``kf.vmap``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
from jax import Array

from keyfan._checks import as_int
from keyfan._flat import unfused
from keyfan._keyarg import check_key
from keyfan._vmap import vmap

__all__ = ["drawn", "floating", "over_batch", "single_key", "split_batch", "split_shape"]


def single_key(key: Any, stream: str | None) -> Array:
    """``key`` as a scalar typed key of its keyfan stream (raw and JAX keys read on ``stream``),
    so every draw below is pinned to the stream whatever JAX's global flags say."""
    arg = check_key("key", key, stream=stream)
    if arg.kind == "keyfan":
        return arg.value
    return cast(Array, jax.random.wrap_key_data(arg.data, impl=arg.stream.spec))


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


def drawn(draw: Callable[[Array], Array], key: Array) -> Array:
    """``draw(key)``, computed in a branch of its own so that no arithmetic after it fuses with it.

    Why: XLA's CPU backend fuses a draw's bits-to-value step (``jax.random.normal``'s
    ``sqrt(2) * erfinv(2u - 1)``, ``uniform``'s ``u * (hi - lo) + lo``) with the arithmetic that
    uses it, and always lets LLVM contract a multiply and an add into one fused multiply-add.
    Inside one fused loop the draw's last multiplies then contract with the consumer's adds
    (``x + scale * z``) and round differently from the same draw computed on its own, as keyfan's
    batched samplers compute it (a loop of their own): for a ``(2, 8, 8, 3)`` batch of
    ``gaussian_noise``, 13 of 192 values of row 0 differed from the single call in the last bit.
    ``lax.optimization_barrier`` does not prevent it: XLA removes the barrier before fusion. A
    ``lax.cond`` whose predicate is not a compile-time constant does (``keyfan._flat.unfused``),
    also under ``vmap``, where it becomes a select over the materialised branch. With the draw
    apart in both programs, single and batched calls give the consumer the same bits and the
    same arithmetic, so rows match bit for bit eagerly, under ``jit`` and inside a user's program.
    """
    impl = jax.random.key_impl(key)
    return _apart(lambda data: draw(jax.random.wrap_key_data(data, impl=impl)), jax.random.key_data(key))


def _apart(fn: Callable[[Array], Array], data: Array) -> Array:
    """``fn(data)`` in a branch of its own, kept apart under ``vmap`` too.

    ``jax.vmap`` turns a ``lax.cond`` with a batched predicate into a select of both branches,
    which XLA fuses again. Under ``vmap`` the predicate is instead taken from the whole batch of
    key data (unbatched), so the branch stays a branch and computes the vmapped draw.
    """
    @jax.custom_batching.custom_vmap
    def run(d: Array) -> Array:
        return unfused(fn, d)

    @run.def_vmap
    def _rule(axis_size: int, in_batched: list[bool], d: Array) -> tuple[Array, bool]:
        if not in_batched[0]:
            return run(d), False
        return _apart(jax.vmap(fn), d), True

    return cast(Array, run(data))


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
