"""``compose``: a pipeline whose steps draw from keys named after them, not numbered."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jax import Array

from keyfan.keys import named
from keyfan.transforms._common import over_batch, single_key, split_batch

__all__ = ["Compose", "compose"]

Step = Callable[[Array, Array], Array]
"""A per-example transform ``step(key, x) -> x``."""


class Compose:
    """A sequence of named per-example steps, made by :func:`compose`; step ``name`` draws from
    ``kf.named(key, name)``, so other steps never change its randomness.

    Examples:
      >>> import jax.numpy as jnp, keyfan as kf
      >>> from keyfan import transforms as T
      >>> pipeline = T.compose(flip=T.flip_left_right, noise=T.gaussian_noise)
      >>> pipeline.names
      ('flip', 'noise')
      >>> key, x = kf.key(0), jnp.zeros((2, 4, 4, 1))
      >>> bool((pipeline(key, x, batch_axes=1)[1] == pipeline.single(kf.at(key, 1), x[1])).all())
      True
    """

    def __init__(self, steps: tuple[tuple[str, Step], ...]):
        self.steps = steps

    @property
    def names(self) -> tuple[str, ...]:
        """The step names, in order."""
        return tuple(name for name, _ in self.steps)

    def single(self, key: Array, x: Array) -> Array:
        """The pipeline on ONE example: step ``name`` gets ``kf.named(key, name)``."""
        for name, step in self.steps:
            x = step(named(key, name), x)
        return x

    def __call__(self, key: Any, x: Any, *, batch_axes: Any = 0, stream: str | None = None) -> Array:
        """Runs the pipeline on one example, or on ``batch_axes`` leading batch axes of ``x``
        (example ``i`` uses ``kf.at(key, i)``, through ``kf.vmap(..., randomness="different")``)."""
        x, batch, _ = split_batch("x", x, batch_axes)
        return over_batch(self.single, single_key(key, stream), x, batch_axes=len(batch))

    def __repr__(self) -> str:
        return f"compose({', '.join(f'{n}={s!r}' for n, s in self.steps)})"


def compose(steps: Mapping[str, Step] | Sequence[tuple[str, Step]] | None = None,
            **named_steps: Step) -> Compose:
    """Chains per-example transforms, each drawing from a key derived from its NAME.

    Step ``name`` receives ``kf.named(key, name)``, not the key of its position: adding,
    removing or reordering other steps leaves its randomness unchanged (the same crop, the same
    flip), which keeps experiments comparable when a pipeline grows.

    Args:
      steps: a mapping (or a sequence of pairs) from unique non-empty names to per-example
        transforms ``step(key, x) -> x``, e.g. ``functools.partial(random_crop, size=32,
        padding=4)``. Steps may also be given as keyword arguments, after ``steps``.

    Returns:
      A callable ``pipeline(key, x, *, batch_axes=0, stream=None)``. With ``batch_axes=1``,
        example ``i`` equals ``pipeline(kf.at(key, i), x[i])`` bit for bit. Call it inside your
        jitted step (or wrap it in ``jax.jit``) for speed: eagerly, each step runs on its own.

    Raises:
      TypeError: a step is not callable, or ``steps`` is neither a mapping nor a sequence of pairs.
      ValueError: a name is empty or given twice.

    Examples:
      >>> import functools, jax.numpy as jnp, keyfan as kf
      >>> from keyfan import transforms as T
      >>> augment = T.compose(flip=T.flip_left_right,
      ...                     crop=functools.partial(T.random_crop, size=28, padding=2))
      >>> augment(kf.key(0), jnp.ones((16, 28, 28, 1)), batch_axes=1).shape
      (16, 28, 28, 1)
    """
    pairs: list[tuple[Any, Any]] = []
    if isinstance(steps, Mapping):
        pairs.extend(steps.items())
    elif steps is not None:
        if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
            raise TypeError(f"steps must be a mapping or a sequence of (name, step) pairs, got {steps!r}.")
        for i, pair in enumerate(steps):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"steps[{i}] must be a (name, step) pair, got {pair!r}.")
            pairs.append((pair[0], pair[1]))
    pairs.extend(named_steps.items())
    seen: set[str] = set()
    for name, step in pairs:
        if not isinstance(name, str) or not name:
            raise TypeError(f"every step name must be a non-empty str, got {name!r}.")
        if name in seen:
            raise ValueError(
                f"step name {name!r} is used twice; names must be unique, since a step's key is "
                f"derived from its name."
            )
        if not callable(step):
            raise TypeError(f"step {name!r} must be callable as step(key, x), got {step!r}.")
        seen.add(name)
    return Compose(tuple(pairs))
