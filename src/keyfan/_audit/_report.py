"""What ``keyfan.audit`` returns: findings, each with a kind, a source line and a fix."""

from __future__ import annotations

import dataclasses
from typing import Any

from keyfan._keyflow.findings import Finding as AuditFinding
from keyfan._keyflow.findings import Kind as AuditKind

__all__ = ["AuditFinding", "AuditKind", "AuditReport"]


@dataclasses.dataclass(frozen=True)
class AuditReport:
    """The result of ``keyfan.audit``: every finding, and whether the function is clean.

    ``report.findings`` holds :class:`keyfan.AuditFinding` objects, problems and allowed (declared)
    sharing alike; ``report.problems`` and ``report.allowed`` split them, ``report.ok`` is True
    when there is no problem, and ``str(report)`` (or rich's rendering, ``keyfan audit``) lists
    them with their lines and fixes.

    Examples:
      >>> import jax, jax.numpy as jnp, keyfan as kf
      >>> def noisy(x, key):
      ...     return x + jax.random.normal(key, x.shape)
      >>> report = kf.audit(noisy, jnp.zeros(3), kf.key(0), in_axes=(0, None))
      >>> report.ok, len(report.problems), report.levels
      (False, 1, ('the mapped axis',))
      >>> report.summary()
      'keyfan.audit(noisy) over the mapped axis: 1 problem (1 draw analysed)'
    """

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
        """The findings that are problems (not declared sharing, not a library's note)."""
        return tuple(f for f in self.findings if not f.allowed)

    @property
    def allowed(self) -> tuple[AuditFinding, ...]:
        """The findings that are allowed: declared sharing and notes about a library's own design."""
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
