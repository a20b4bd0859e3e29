"""One table of wording for every key-flow finding, shared by ``kf.audit``, ``kf.vmap`` and
``kf.sanitize``: what a draw is called, and how each kind of misuse is fixed."""

from __future__ import annotations

from keyfan._keyflow.primitives import draw_name

__all__ = ["DECLARE", "FIXES", "SHARED_DRAW_FIX", "WRAPPER_FIXES", "shared_draw", "what"]

DECLARE = "if the sharing is intended, draw inside `with kf.shared_randomness():`"

SHARED_DRAW_FIX = (
    "give each example its own key: map the key (in_axes=0 over kf.fan_out(key, n)), fold in a "
    "mapped index (jax.random.fold_in(key, jax.lax.axis_index(name))), or use "
    f"kf.vmap(..., randomness='different'); {DECLARE}."
)

FIXES = {
    "shared-draw": SHARED_DRAW_FIX,
    "closure-key": (
        "pass the key to the function as an argument and map it (one key per example) instead of "
        f"closing over it; {DECLARE}."
    ),
    "constant-key": (
        "derive the key from a mapped key argument (or fold a mapped index into it) instead of "
        f"making it from a constant seed; {DECLARE}."
    ),
    "key-reuse": "split the key (k1, k2 = jax.random.split(key)) and give each draw its own subkey.",
    "split-then-reuse": "after key, sub = jax.random.split(key), use only the children, never the parent.",
    "fold-in-twice": "fold in distinct data for each use (a different constant or counter), or split the key.",
    "loop-reuse": (
        "carry the key through the loop and split it every iteration (key, sub = jax.random.split(key); "
        "draw from sub), or scan over one key per iteration."
    ),
    "broadcast-key": (
        "make one key per row with jax.random.split(key, n) or kf.fan_out(key, n) instead of "
        "broadcasting, tiling or stacking one key."
    ),
}
"""The fix of each finding kind, by the kind's value (``AuditKind.value``)."""

WRAPPER_FIXES = {
    "linen": ("in a linen nn.vmap, split the stream: split_rngs={'dropout': True} (and the same for "
              "every stream drawn per example)"),
    "nnx": ("in nnx.vmap, give each example its own Rngs: split them with nnx.split_rngs(splits=n) "
            "(or nnx.StateAxes) and map them (in_axes=0) instead of passing them with in_axes=None"),
    "equinox": ("in eqx.filter_vmap, pass one key per example (jax.random.split(key, n)) as a mapped "
                "argument instead of closing over one key"),
}
"""A wrapper-specific fix, by the library whose vmap the draw sits in."""


def what(primitive: str, api: str = "") -> str:
    """How a draw is called in a message: the user's API (``jax.random.normal``) if known."""
    return draw_name(primitive, api)


def shared_draw(what: str, batch: str, origin: str) -> str:
    """The one sentence of a shared draw, for ``kf.sanitize``, ``kf.audit`` and ``kf.vmap``:
    ``{what} draws the same values for every example {batch}: its key {origin}.``"""
    return f"{what} draws the same values for every example {batch}: its key {origin}."
