"""The tour: every reference recipe run on its defaults, checked, and the broadcast-key bug shown.

``keyfan tour`` renders :func:`run_tour`'s rows as a table. Each row runs one recipe twice
(same seed) and reports the output's shape, whether its per-example rows are pairwise distinct
on identical inputs, and whether the second run reproduces the first bit for bit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from keyfan import recipes
from keyfan._pitfalls import BugAndFix, broadcast_key, distinct_rows

__all__ = ["TourRow", "broadcast_demo", "run_tour", "sanitizer_demo"]

SEED = 0


class TourRow(NamedTuple):
    """One recipe's run: what it returned and the properties checked on it."""

    recipe: str
    shape: tuple[int, ...]
    distinct: str
    """"yes", "NO", or the property checked instead where distinct rows are not it
    ("3rd == 1st", "NO: 3rd != 1st", "same by design" for shared params)."""
    reproducible: bool
    note: str
    holds: bool
    """Whether the row's property holds (distinct rows, or the override's check)."""

    @property
    def ok(self) -> bool:
        """The property holds and the second run reproduced the first bit for bit."""
        return self.holds and self.reproducible


def _cases() -> list[tuple[str, Callable[[], Array], str | None, str]]:
    """(name, thunk, property override, note) for every recipe on its default arguments."""
    key = jax.random.PRNGKey(SEED)
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros((2,))}
    mlp = recipes.init_mlp_params(key, 4, 16, 2)
    images = jnp.full((4, 232, 232, 3), 0.5, jnp.float32)
    x_batch = jnp.ones((4, 5), jnp.float32)
    return [
        ("deterministic_batch", lambda: recipes.deterministic_batch(SEED, 8, 4), None,
         "split, then vmap"),
        ("batched_init_param_count", lambda: recipes.batched_init_param_count(SEED, 5, 3),
         "3rd == 1st", "vmap(model.init, in_axes=(0, None))"),
        ("nn_vmap_forward", lambda: recipes.nn_vmap_forward(SEED, x_batch, 3).reshape(4, 3),
         "same by design", "params shared: no batch axis"),
        ("model_step", lambda: recipes.model_step(params, jnp.ones((6, 3)), key),
         None, "noise + dropout per example, jitted"),
        ("forward_batch", lambda: recipes.forward_batch(mlp, jnp.ones((6, 4)), key),
         None, "vmap(in_axes=(None, 0, 0))"),
        ("augment_batch", lambda: recipes.augment_batch(key, images), None,
         "flip, brightness, crop per image"),
        ("sample_many", lambda: recipes.sample_many(key, 1000), None, "sin(x) + x**2"),
        ("nested_normal", lambda: recipes.nested_normal(key, 4, 8, 3).reshape(32, 3), None,
         "flat key grid, two nested vmaps"),
    ]


def run_tour() -> list[TourRow]:
    """Runs every recipe twice and checks its rows; see :class:`TourRow`."""
    rows = []
    for name, thunk, override, note in _cases():
        first, second = np.asarray(thunk()), np.asarray(thunk())
        reproducible = first.shape == second.shape and first.tobytes() == second.tobytes()
        if override == "3rd == 1st":
            holds = bool(first[2] == first[0])
            distinct = "3rd == 1st" if holds else "NO: 3rd != 1st"
        elif override is not None:
            holds, distinct = True, override
        else:
            holds = distinct_rows(first)
            distinct = "yes" if holds else "NO"
        rows.append(TourRow(name, tuple(first.shape), distinct, reproducible, note, holds))
    return rows


def sanitizer_demo(batch_size: int = 4, n: int = 3) -> str:
    """The broadcast-key bug run under ``kf.sanitize()``: the first line of the error it raises.

    Raises:
      AssertionError: the sanitizer let the bug through (the tour then fails).
    """
    from keyfan import SharedRandomnessError, sanitize

    key, xs = jax.random.PRNGKey(SEED), jnp.zeros((batch_size, n))
    try:
        with sanitize():
            jax.vmap(recipes.add_noise, in_axes=(0, None))(xs, key)
    except SharedRandomnessError as err:
        # "kf.sanitize: shared-draw at FILE:LINE (fn): jax.random.normal draws the same values for
        # every example of the jax.vmap traced at ..." -> the finding, without this script's frames.
        message = str(err).splitlines()[0]
        return re.sub(r"^kf\.sanitize: (?:[a-z-]+ )?at .*?\): ", "", message).split(" of the jax.vmap")[0]
    raise AssertionError("kf.sanitize() did not report the broadcast key")


def broadcast_demo(batch_size: int = 4, n: int = 3) -> BugAndFix:
    """The broadcast-key bug (identical rows) and its fix, on zero inputs."""
    return broadcast_key(SEED, batch_size, n)
