"""A rich rendering of an :class:`~keyfan._audit._report.AuditReport`, for the command line."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from keyfan._audit._report import AuditReport, short_location

__all__ = ["render"]


def render(report: AuditReport) -> Group:
    """The verdict line, then one table row per finding (problems first)."""
    style = "bold green" if report.ok else "bold red"
    parts: list[Table | Text] = [Text(report.summary(), style=style)]
    if report.findings:
        table = Table(show_lines=True)
        for column, width in (("kind", None), ("where", None), ("what", 60), ("fix", 50)):
            table.add_column(column, overflow="fold", max_width=width)
        for finding in (*report.problems, *report.allowed):
            kind = Text(finding.kind.value, style="yellow" if finding.allowed else "red")
            if finding.allowed:
                kind.append(" (allowed)", style="green")
            where = short_location(finding.location) or "?"
            table.add_row(kind, where, finding.message, finding.fix)
        parts.append(table)
    return Group(*parts)
