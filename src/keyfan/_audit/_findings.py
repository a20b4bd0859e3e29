"""From the engine's draw sites and ledger events to findings with a message and a fix."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

from keyfan._audit._report import AuditFinding, AuditKind, AuditReport, short_location
from keyfan._audit._trace import Traced
from keyfan._keyflow.batching import SharedDraw
from keyfan._keyflow.flow import Analysis, DrawSite
from keyfan._keyflow.ledger import Event, Use
from keyfan._keyflow.primitives import declared_shared
from keyfan._keyflow.wording import FIXES as _FIXES
from keyfan._keyflow.wording import shared_draw
from keyfan._keyflow.wording import what as _what_draw

__all__ = ["build_report"]

_HOW = {
    "draw": "a random draw",
    "split": "jax.random.split",
    "bits": "a keyfan sampler",
    "fold_in": "fold_in",
}

FIXES = {kind: _FIXES[kind.value] for kind in AuditKind}


def build_report(traced: Traced, analysis: Analysis, inner: Sequence[SharedDraw] = ()) -> AuditReport:
    """The findings of one analysis, without duplicates, shared draws first; ``inner`` are the
    shared draws found inside vmaps that the traced program runs itself."""
    found_inner = [AuditFinding(AuditKind.SHARED_DRAW, d.problem, d.location, d.fix) for d in inner]
    events = [e for e in analysis.events if _live(e.use, analysis) and _live(e.first, analysis)]
    findings = [*found_inner, *_shared_findings(traced, analysis), *(_event_finding(e) for e in events)]
    counts = Counter(findings)
    unique = [dataclasses.replace(f, count=counts[f]) for f in dict.fromkeys(findings)]
    labels = tuple(traced.level_label(i) for i in range(len(traced.levels)))
    return AuditReport(traced.function, tuple(unique), len(analysis.sites), labels)


def _live(use: Use | None, analysis: Analysis) -> bool:
    """False for a draw whose values reach no output: it has no effect, so its key use is none."""
    return use is None or use.draw is None or use.draw in analysis.live


def _missing(traced: Traced, site: DrawSite) -> frozenset[int]:
    return frozenset(range(len(traced.levels))) - site.levels


def _shared_findings(traced: Traced, analysis: Analysis) -> list[AuditFinding]:
    flagged = [s for s in analysis.sites if s.id in analysis.live and _missing(traced, s)]
    found = []
    for site in flagged:
        missing = _missing(traced, site)
        # A derivation whose result only keys a later shared draw is reported there, once.
        if any(other is not site and site.id in other.fed_by and _missing(traced, other) >= missing
               for other in flagged):
            continue
        found.append(_shared_finding(traced, site, missing))
    return found


def _shared_finding(traced: Traced, site: DrawSite, missing: frozenset[int]) -> AuditFinding:
    what = _what_draw(site.primitive, site.api)
    along = " and ".join(traced.level_label(i) for i in sorted(missing))
    if site.sources:
        kind = AuditKind.SHARED_DRAW
        unmapped = [i for i in sorted(site.sources) if not missing <= traced.in_levels[i]]
        named = [i for i in unmapped if traced.keys[i]] or unmapped
        origin = ", ".join(traced.names[i] for i in named)
        message = shared_draw(what, f"along {along}",
                              f"comes from {origin}, which {'is' if len(named) == 1 else 'are'} not mapped there")
    elif site.consts:
        kind = AuditKind.CLOSURE_KEY
        message = (f"{what} uses a key captured from an enclosing scope (a closure), so it draws the "
                   f"same values for every example along {along}.")
    else:
        kind = AuditKind.CONSTANT_KEY
        message = (f"{what} uses a key made from constants inside the function (such as "
                   f"jax.random.key(0)), so it draws the same values for every example along {along}.")
    allowed = declared_shared(site.name_stack)
    return AuditFinding(kind, message, site.location, FIXES[kind], allowed=allowed)


def _name(use: Use) -> str:
    return use.api if use.api and use.how != "split" else _HOW.get(use.how, use.how)


def _at(use: Use | None) -> str:
    return f" at {short_location(use.location)}" if use is not None and use.location else ""


def _event_finding(event: Event) -> AuditFinding:
    use, first = event.use, event.first
    how = _name(use)
    first_how = _name(first) if first is not None else ""
    if event.kind == "key-reuse" and "fold_in" in (use.how, first.how if first else ""):
        kind = AuditKind.KEY_REUSE
        if use.how == "fold_in":
            head = f"fold_in derives a key from a key that {first_how}{_at(first)} consumes"
        else:
            head = f"{how} consumes a key that fold_in{_at(first)} also derives from"
        message = (f"{head}: under the partitionable Threefry (JAX's default) fold_in(key, d) equals "
                   f"split(key, n)[d] for d < n and the hash behind value d of a draw from key, so the "
                   f"derived key's randomness overlaps the parent's.")
    elif event.kind == "key-reuse":
        kind = AuditKind.KEY_REUSE
        message = (f"{how} consumes a key already consumed by {first_how}{_at(first)}: both see the "
                   f"same random bits.")
    elif event.kind == "split-then-reuse":
        kind = AuditKind.SPLIT_THEN_REUSE
        message = (f"{how} uses a key after it was split{_at(first)}: the parent's randomness "
                   f"overlaps its children's.")
    elif event.kind == "fold-in-twice":
        kind = AuditKind.FOLD_IN_TWICE
        message = (f"fold_in folds the same data into the same key as the fold_in{_at(first)}: the two "
                   f"derived keys are identical.")
    elif event.kind == "broadcast-key":
        kind = AuditKind.BROADCAST_KEY
        message = (f"{how} reads an array of copies of one key (broadcast, tiled, repeated or "
                   f"stacked), so its rows get identical randomness.")
    elif use.library and event.loop == use.location:
        # The loop and the draws are one call into a library from one line of the user's: the
        # library re-derives from the key it was given on every step by its own design (diffrax's
        # VirtualBrownianTree: the path is a pure function of key and time). Its note, not a bug.
        related = first.location if first is not None else ""
        return AuditFinding(AuditKind.LOOP_REUSE, (
            f"note: {use.library}'s own code, called here, consumes one key on every iteration of its loop "
            f"({how}); that is {use.library}'s design (the same key re-derives the same randomness), not "
            f"a misuse in this program."), use.location, f"nothing to fix here; {FIXES[AuditKind.LOOP_REUSE]}"
            f" (if {use.library} is given one key per independent run)", allowed=True, related=related)
    elif first is not None:
        kind = AuditKind.LOOP_REUSE
        message = (f"a loop carries to its next iteration a key already consumed{_at(first)}, and "
                   f"{how} consumes it again there.")
    else:
        kind = AuditKind.LOOP_REUSE
        message = (f"{how} consumes the same key on every iteration of a loop (a loop constant, a "
                   f"closed-over key, or a carry passed on unchanged), so every iteration draws the "
                   f"same values.")
    related = first.location if first is not None else ""
    return AuditFinding(kind, message, use.location, FIXES[kind], related=related)
