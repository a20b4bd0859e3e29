"""The one table of random draws: which primitives draw, which operands key them, what a user
calls them. Read by the engine's rules (``rules.RULES``), the sanitizer's check at
``BatchTrace.process_primitive`` (``batching``) and the wording of every finding (``findings``);
a new draw primitive is added here and nowhere else.
"""

from __future__ import annotations

from typing import NamedTuple

from keyfan._keyflow.source import in_scope
from keyfan.streams import HASH_SCOPE

__all__ = ["DRAWS", "HASH_SCOPE", "SHARED_SCOPE", "DrawPrimitive", "declared_shared", "draw_name", "keys_of"]

SHARED_SCOPE = "keyfan_shared_randomness"
"""The ``jax.named_scope`` of ``kf.shared_randomness()``: a draw traced inside it is declared shared."""


class DrawPrimitive(NamedTuple):
    """A primitive that draws random values."""

    keyed_by: tuple[int, ...] | None
    """The operands that key it (None: every operand, as a hash of a per-example counter is
    per-example: ``threefry2x32``)."""
    called: str
    """What a user calls it when the API behind it is unknown."""


DRAWS: dict[str, DrawPrimitive] = {
    "random_bits": DrawPrimitive((0,), "a random draw"),
    "random_gamma": DrawPrimitive((0,), "a gamma draw"),
    "threefry2x32": DrawPrimitive(None, "a Threefry hash"),
}
"""Every JAX primitive that draws, by name."""

_KEYFAN_HASH = "a keyfan draw or key derivation (kf.normal, kf.named, kf.at, ...)"
"""keyfan's own hash, found by its name scope (``HASH_SCOPE``), not by a primitive."""


def keys_of(primitive: str, n_operands: int) -> range | tuple[int, ...]:
    """The operands that key a draw of ``primitive`` (which must be in :data:`DRAWS`)."""
    keyed = DRAWS[primitive].keyed_by
    return range(n_operands) if keyed is None else tuple(i for i in keyed if i < n_operands)


def draw_name(primitive: str, api: str = "") -> str:
    """How a draw is called in a message: the user's API (``jax.random.normal``) if known."""
    if api:
        return api
    if primitive == HASH_SCOPE:
        return _KEYFAN_HASH
    found = DRAWS.get(primitive)
    return found.called if found is not None else f"a {primitive} draw"


def declared_shared(name_stack: str) -> bool:
    """True for a draw traced inside ``kf.shared_randomness()`` (or ``kf.vmap(...,
    randomness="same")``): sharing it over a batch is declared, never reported as a problem."""
    return in_scope(name_stack, SHARED_SCOPE)
