"""What ``keyfan.audit`` returns: findings, each with a kind, a source line and a fix."""

from __future__ import annotations

import dataclasses
import enum
import os
from typing import Any

__all__ = ["AuditReport", "AuditFinding", "AuditKind", "short_location"]


class AuditKind(enum.Enum):
    """The kinds of key misuse ``keyfan.audit`` finds."""

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
class AuditFinding:
    """One misuse (or one declared, allowed sharing)."""

    kind: AuditKind
    message: str
    """What is wrong, in one sentence."""
    location: str
    """``file:line (function)`` of the user's code that made the draw, or ``""``."""
    fix: str
    """How to fix it, in one sentence."""
    allowed: bool = False
    """True for sharing declared with ``kf.shared_randomness()`` or ``kf.vmap(randomness="same")``."""
    related: str = ""
    """The other location involved (the first use of a reused key), or ``""``."""
    count: int = 1
    """How many draws (or uses) at this location the finding stands for."""

    def __str__(self) -> str:
        where = short_location(self.location) or "unknown location"
        if self.count > 1:
            where += f" (x{self.count})"
        tag = "allowed " if self.allowed else ""
        return f"{tag}{self.kind.value} at {where}: {self.message} Fix: {self.fix}"


@dataclasses.dataclass(frozen=True)
class AuditReport:
    """The result of ``keyfan.audit``: every finding, and whether the function is clean."""

    function: str
    """The audited function's name."""
    findings: tuple[AuditFinding, ...]
    draws: int
    """Number of random draws analysed."""
    levels: tuple[str, ...]
    """The vmap levels audited, outermost first (empty: no vmap)."""

    @property
    def ok(self) -> bool:
        """True when nothing is flagged (allowed, declared sharing does not count)."""
        return not self.problems

    @property
    def problems(self) -> tuple[AuditFinding, ...]:
        return tuple(f for f in self.findings if not f.allowed)

    @property
    def allowed(self) -> tuple[AuditFinding, ...]:
        return tuple(f for f in self.findings if f.allowed)

    def summary(self) -> str:
        """One line: the verdict and the counts."""
        over = f" over {', '.join(self.levels)}" if self.levels else ""
        if self.ok:
            verdict = "no key misuse found"
        else:
            verdict = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        extra = f", {len(self.allowed)} allowed (declared shared)" if self.allowed else ""
        draws = f"{self.draws} draw{'s' if self.draws != 1 else ''} analysed"
        return f"keyfan.audit({self.function}){over}: {verdict}{extra} ({draws})"

    def __str__(self) -> str:
        lines = [self.summary()]
        lines.extend(f"  - {f}" for f in (*self.problems, *self.allowed))
        return "\n".join(lines)

    def __rich__(self) -> Any:
        from keyfan._audit._render import render

        return render(self)


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
