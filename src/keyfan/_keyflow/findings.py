"""The one finding type of keyfan's key-flow checks, and the wording of every rule.

``kf.audit``, ``kf.sanitize()`` and ``kf.vmap(..., randomness="error")`` find misuse with one
engine (``flow``, ``ledger``, ``batching``) and present what they find as :class:`Finding`: a
:class:`Kind`, the user's source line, what is wrong in one sentence and the fix in one sentence.
The sentence and the fix of each kind are written here and nowhere else; each tool only picks a
constructor below and renders the result (``str(finding)``, :func:`error_text`). A new rule adds
its kind, its fix and its constructor to this file.

The public names: :class:`Finding` is ``kf.AuditFinding`` (what ``report.findings`` holds, and
what ``SharedRandomnessError.findings`` holds) and :class:`Kind` is ``kf.AuditKind``.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Sequence

from keyfan._keyflow.ledger import Event, Use

__all__ = ["DECLARE", "FIXES", "SHARED_DRAW_FIX", "WRAPPER_FIXES", "Finding", "Kind", "error_text", "event",
           "in_vmap", "short_location", "unmapped_key", "vmap_policy"]


class Kind(enum.Enum):
    """The kinds of key misuse keyfan finds (``kf.AuditKind``).

    Examples:
      >>> import jax, jax.numpy as jnp, keyfan as kf
      >>> def twice(x, key):
      ...     return x + jax.random.normal(key, x.shape) + jax.random.uniform(key, x.shape)
      >>> report = kf.audit(twice, jnp.zeros(3), kf.key(0), in_axes=(0, 0))
      >>> [f.kind for f in report.findings] == [kf.AuditKind.KEY_REUSE]
      True
    """

    SHARED_DRAW = "shared-draw"
    """A draw whose key is not mapped over an axis its result is batched over."""
    CLOSURE_KEY = "closure-key"
    """A draw from a key captured from an enclosing scope: the same for every example."""
    CONSTANT_KEY = "constant-key"
    """A draw from a key made from constants inside the mapped function."""
    KEY_REUSE = "key-reuse"
    """The same key consumed by two draws (typed or raw)."""
    SPLIT_THEN_REUSE = "split-then-reuse"
    """A key split, then used again."""
    FOLD_IN_TWICE = "fold-in-twice"
    """``fold_in`` with the same data twice on one key."""
    LOOP_REUSE = "loop-reuse"
    """A key consumed on every iteration of a ``scan``/``while`` loop."""
    BROADCAST_KEY = "broadcast-key"
    """A draw from an array of copies of one key (broadcast, tiled, stacked)."""


@dataclasses.dataclass(frozen=True)
class Finding:
    """One key misuse (or one declared, allowed sharing), as every keyfan check reports it
    (``kf.AuditFinding``).

    ``kf.audit`` returns them in ``report.findings``; ``kf.sanitize()`` and ``kf.vmap(...,
    randomness="error")`` raise a :class:`keyfan.SharedRandomnessError` whose ``findings`` holds
    them (and ``kf.sanitize(action="warn")`` warns with one each). ``str(finding)`` is the whole
    report in one line: kind, source line, what is wrong, and the fix.

    Examples:
      >>> import jax, jax.numpy as jnp, keyfan as kf
      >>> def noisy(x, key):
      ...     return x + jax.random.normal(key, x.shape)
      >>> report = kf.audit(noisy, jnp.zeros(3), kf.key(0), in_axes=(0, None))
      >>> finding = report.findings[0]
      >>> finding.kind is kf.AuditKind.SHARED_DRAW, finding.allowed
      (True, False)
      >>> str(finding).startswith("shared-draw at ")
      True
    """

    kind: Kind
    message: str
    """What is wrong, in one sentence."""
    location: str
    """``file:line (function)`` of the user's code that made the draw, or ``""``."""
    fix: str
    """How to fix it, in one sentence."""
    allowed: bool = False
    """True for sharing declared with ``kf.shared_randomness()`` or ``kf.vmap(randomness="same")``,
    and for a library's own design noted at the user's call (never a problem)."""
    related: str = ""
    """The other location involved (the first use of a reused key), or ``""``."""
    count: int = 1
    """How many draws (or uses) at this location the finding stands for."""
    batch: str = ""
    """For a shared draw, the batch its values are the same over, as the message words it
    (``of the jax.vmap traced at train.py:20 (step) (batch of 8)``, ``along the mapped axis``);
    ``""`` for the other kinds."""
    frame: tuple[str, int] | None = dataclasses.field(default=None, compare=False, repr=False)
    """``(file, line)`` of the draw in the user's code, where a warning points; None if unknown."""

    def __str__(self) -> str:
        where = short_location(self.location) or "unknown location"
        if self.count > 1:
            where += f" (x{self.count})"
        tag = "allowed " if self.allowed else ""
        return f"{tag}{self.kind.value} at {where}: {self.message} Fix: {self.fix}"


def short_location(location: str) -> str:
    """``location`` with its paths relative to the working directory when they lie under it."""
    if " <- " in location:
        return " <- ".join(short_location(part) for part in location.split(" <- "))
    path, sep, rest = location.partition(":")
    if not sep:
        return location
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return location
    return f"{relative}:{rest}" if not relative.startswith("..") else location


def error_text(tool: str, findings: Sequence[Finding]) -> str:
    """The text of the error (or warning) a tool raises for ``findings``: one line for one, a
    numbered list for several."""
    if len(findings) == 1:
        return f"{tool}: {findings[0]}"
    listed = "\n".join(f"  {i}. {f}" for i, f in enumerate(findings, 1))
    return f"{tool}: {len(findings)} random draws are the same for every example of a batch:\n{listed}"


# -- the fixes ---------------------------------------------------------------------------------

DECLARE = "if the sharing is intended, draw inside `with kf.shared_randomness():`"

SHARED_DRAW_FIX = (
    "give each example its own key: map the key (in_axes=0 over kf.fan_out(key, n)), fold in a "
    "mapped index (jax.random.fold_in(key, jax.lax.axis_index(name))), or use "
    f"kf.vmap(..., randomness='different'); {DECLARE}."
)

FIXES = {
    Kind.SHARED_DRAW: SHARED_DRAW_FIX,
    Kind.CLOSURE_KEY: (
        "pass the key to the function as an argument and map it (one key per example) instead of "
        f"closing over it; {DECLARE}."
    ),
    Kind.CONSTANT_KEY: (
        "derive the key from a mapped key argument (or fold a mapped index into it) instead of "
        f"making it from a constant seed; {DECLARE}."
    ),
    Kind.KEY_REUSE: "split the key (k1, k2 = jax.random.split(key)) and give each draw its own subkey.",
    Kind.SPLIT_THEN_REUSE: "after key, sub = jax.random.split(key), use only the children, never the parent.",
    Kind.FOLD_IN_TWICE: "fold in distinct data for each use (a different constant or counter), or split the key.",
    Kind.LOOP_REUSE: (
        "carry the key through the loop and split it every iteration (key, sub = jax.random.split(key); "
        "draw from sub), or scan over one key per iteration."
    ),
    Kind.BROADCAST_KEY: (
        "make one key per row with jax.random.split(key, n) or kf.fan_out(key, n) instead of "
        "broadcasting, tiling or stacking one key."
    ),
}
"""The fix of each kind."""

WRAPPER_FIXES = {
    "linen": ("in a linen nn.vmap, split the stream: split_rngs={'dropout': True} (and the same for "
              "every stream drawn per example)"),
    "nnx": ("in nnx.vmap, give each example its own Rngs: split them with nnx.split_rngs(splits=n) "
            "(or nnx.StateAxes) and map them (in_axes=0) instead of passing them with in_axes=None"),
    "equinox": ("in eqx.filter_vmap, pass one key per example (jax.random.split(key, n)) as a mapped "
                "argument instead of closing over one key"),
}
"""A wrapper-specific fix, by the library whose vmap the draw sits in."""

_VMAPS = {"jax": "jax.vmap", "linen": "linen nn.vmap", "nnx": "nnx.vmap", "equinox": "eqx.filter_vmap",
          "keyfan": "kf.vmap"}

_UNKNOWN_ORIGIN = ("is not mapped over that vmap (it was passed with in_axes=None, closed over, or derived "
                   "from such a key)")


# -- shared draws ------------------------------------------------------------------------------

def _shared(what: str, batch: str, origin: str) -> str:
    """The one sentence of a shared draw."""
    return f"{what} draws the same values for every example {batch}: its key {origin}."


def in_vmap(what: str, location: str, *, vmap: str, wrapper: str, axis_size: int | None, origin: str = "",
            frame: tuple[str, int] | None = None) -> Finding:
    """A draw the sanitizer found shared by every example of a vmap being traced.

    Args:
      what: the draw as the user called it (``jax.random.normal``).
      location: its source line.
      vmap: the user's line where the vmap was traced, or ``""``.
      wrapper: whose vmap (``"jax"``, ``"linen"``, ``"nnx"``, ``"equinox"``, ``"keyfan"``).
      axis_size: the batch size, if known.
      origin: where its key comes from, as a clause (``"is the argument `key` of ..."``), or ``""``.
      frame: ``(file, line)`` of the draw, for warnings.
    """
    vmap_at = f" traced at {short_location(vmap)}" if vmap else ""
    size = f" (batch of {axis_size})" if axis_size is not None else ""
    batch = f"of the {_VMAPS.get(wrapper, 'vmap')}{vmap_at}{size}"
    specific = WRAPPER_FIXES.get(wrapper)
    fix = f"{specific}; or {SHARED_DRAW_FIX}" if specific else SHARED_DRAW_FIX
    return Finding(Kind.SHARED_DRAW, _shared(what, batch, origin or _UNKNOWN_ORIGIN), location, fix,
                   batch=batch, frame=frame)


def vmap_policy(what: str, location: str, *, origins: Sequence[str], key_arguments: bool,
                raw_hint: bool = False) -> Finding:
    """A draw ``kf.vmap(..., randomness="error")`` found shared by the batch.

    Args:
      what: the draw as the user called it.
      location: its source line.
      origins: the unmapped arguments its key comes from (empty: not an argument at all).
      key_arguments: whether the call has key arguments, so ``randomness="different"`` applies.
      raw_hint: an origin may be a raw ``uint32[2]`` key, to be named with ``key_argnums=``.
    """
    if origins:
        origin = f"comes from {', '.join(origins)}, which is not mapped (in_axes None)"
        if raw_hint:
            origin += "; if that is a raw uint32[2] key, name it with key_argnums= so it can be fanned out"
    else:
        origin = ("is not an argument of the function (it is closed over, or made inside it from constants), "
                  "so kf.vmap cannot give each example its own key; pass the key as an argument")
    different = ("randomness='different' gives example i the key kf.at(key, i); " if key_arguments else
                 "make the key an argument, then randomness='different' gives example i the key kf.at(key, i); ")
    fix = (f"{different}randomness='same' (or `with kf.shared_randomness():` around the draw) shares it on "
           f"purpose; or pass one key per example (kf.fan_out(key, n), in_axes=0).")
    return Finding(Kind.SHARED_DRAW, _shared(what, "of the batch", origin), location, fix, batch="of the batch")


def unmapped_key(what: str, location: str, *, along: str, origins: Sequence[str] | None, closure: bool,
                 allowed: bool) -> Finding:
    """A draw the audit found not mapped over some vmap level of the function.

    Args:
      what: the draw as the user called it.
      location: its source line.
      along: the levels it is shared along (``the mapped axis``, ``vmap level 0 (outermost)``).
      origins: the unmapped inputs its key comes from; None when it comes from no input (a
        closed-over or constant key).
      closure: with ``origins`` None, whether the key is closed over (else made from constants).
      allowed: the sharing is declared (``kf.shared_randomness()``).
    """
    batch = f"along {along}"
    if origins is not None:
        kind = Kind.SHARED_DRAW
        verb = "is" if len(origins) == 1 else "are"
        message = _shared(what, batch, f"comes from {', '.join(origins)}, which {verb} not mapped there")
    elif closure:
        kind = Kind.CLOSURE_KEY
        message = (f"{what} uses a key captured from an enclosing scope (a closure), so it draws the "
                   f"same values for every example {batch}.")
    else:
        kind = Kind.CONSTANT_KEY
        message = (f"{what} uses a key made from constants inside the function (such as "
                   f"jax.random.key(0)), so it draws the same values for every example {batch}.")
    return Finding(kind, message, location, FIXES[kind], allowed=allowed, batch=batch)


# -- key reuse ---------------------------------------------------------------------------------

_HOW = {
    "draw": "a random draw",
    "split": "jax.random.split",
    "bits": "a keyfan sampler",
    "fold_in": "fold_in",
}


def _name(use: Use) -> str:
    return use.api if use.api and use.how != "split" else _HOW.get(use.how, use.how)


def _at(use: Use | None) -> str:
    return f" at {short_location(use.location)}" if use is not None and use.location else ""


def event(found: Event) -> Finding:
    """A key-reuse event of the engine's ledger (``key-reuse``, ``split-then-reuse``,
    ``fold-in-twice``, ``broadcast-key``, ``loop-reuse``) as a finding."""
    use, first = found.use, found.first
    how = _name(use)
    first_how = _name(first) if first is not None else ""
    related = first.location if first is not None else ""
    if found.kind == "key-reuse" and "fold_in" in (use.how, first.how if first else ""):
        kind = Kind.KEY_REUSE
        if use.how == "fold_in":
            head = f"fold_in derives a key from a key that {first_how}{_at(first)} consumes"
        else:
            head = f"{how} consumes a key that fold_in{_at(first)} also derives from"
        message = (f"{head}: under the partitionable Threefry (JAX's default) fold_in(key, d) equals "
                   f"split(key, n)[d] for d < n and the hash behind value d of a draw from key, so the "
                   f"derived key's randomness overlaps the parent's.")
    elif found.kind == "key-reuse":
        kind = Kind.KEY_REUSE
        message = (f"{how} consumes a key already consumed by {first_how}{_at(first)}: both see the "
                   f"same random bits.")
    elif found.kind == "split-then-reuse":
        kind = Kind.SPLIT_THEN_REUSE
        message = (f"{how} uses a key after it was split{_at(first)}: the parent's randomness "
                   f"overlaps its children's.")
    elif found.kind == "fold-in-twice":
        kind = Kind.FOLD_IN_TWICE
        message = (f"fold_in folds the same data into the same key as the fold_in{_at(first)}: the two "
                   f"derived keys are identical.")
    elif found.kind == "broadcast-key":
        kind = Kind.BROADCAST_KEY
        message = (f"{how} reads an array of copies of one key (broadcast, tiled, repeated or "
                   f"stacked), so its rows get identical randomness.")
    elif use.library and found.loop == use.location:
        # The loop and the draws are one call into a library from one line of the user's: the
        # library re-derives from the key it was given on every step by its own design (diffrax's
        # VirtualBrownianTree: the path is a pure function of key and time). Its note, not a bug.
        return Finding(Kind.LOOP_REUSE, (
            f"note: {use.library}'s own code, called here, consumes one key on every iteration of its loop "
            f"({how}); that is {use.library}'s design (the same key re-derives the same randomness), not "
            f"a misuse in this program."), use.location, f"nothing to fix here; {FIXES[Kind.LOOP_REUSE]}"
            f" (if {use.library} is given one key per independent run)", allowed=True, related=related)
    elif first is not None:
        kind = Kind.LOOP_REUSE
        message = (f"a loop carries to its next iteration a key already consumed{_at(first)}, and "
                   f"{how} consumes it again there.")
    else:
        kind = Kind.LOOP_REUSE
        message = (f"{how} consumes the same key on every iteration of a loop (a loop constant, a "
                   f"closed-over key, or a carry passed on unchanged), so every iteration draws the "
                   f"same values.")
    return Finding(kind, message, use.location, FIXES[kind], related=related)
