"""A rich rendering of an :class:`~keyfan._audit._report.AuditReport`, for the command line."""

from __future__ import annotations

from rich.console import Group
from rich.padding import Padding
from rich.text import Text

from keyfan._audit._report import AuditReport
from keyfan._keyflow.findings import Finding, short_location

__all__ = ["render"]


def render(report: AuditReport) -> Group:
    """The verdict line, then each finding (problems first): kind and source line, what is wrong,
    and the fix."""
    parts: list[Text | Padding] = [Text(report.summary(), style="bold green" if report.ok else "bold red")]
    for finding in (*report.problems, *report.allowed):
        parts.extend(_finding(finding))
    return Group(*parts)


def _finding(finding: Finding) -> list[Text | Padding]:
    head = Text()
    if finding.allowed:
        head.append("✓ allowed ", style="green")
        head.append(finding.kind.value, style="yellow")
    else:
        head.append("✗ ", style="red")
        head.append(finding.kind.value, style="bold red")
    head.append(f"  {short_location(finding.location) or 'unknown location'}", style="cyan")
    if finding.count > 1:
        head.append(f"  (x{finding.count})")
    fix = Text("fix: ", style="bold")
    fix.append(finding.fix)
    return [head, Padding(Text(finding.message), (0, 0, 0, 4)), Padding(fix, (0, 0, 0, 4))]
