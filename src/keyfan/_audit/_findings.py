"""Which of the engine's draw sites and ledger events ``kf.audit`` reports (the wording of each
is :mod:`keyfan._keyflow.findings`)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

from keyfan._audit._report import AuditReport
from keyfan._audit._trace import Traced
from keyfan._keyflow.findings import Finding, event, unmapped_key
from keyfan._keyflow.flow import Analysis, DrawSite
from keyfan._keyflow.ledger import Use
from keyfan._keyflow.primitives import declared_shared, draw_name

__all__ = ["build_report"]


def build_report(traced: Traced, analysis: Analysis, inner: Sequence[Finding] = ()) -> AuditReport:
    """The findings of one analysis, without duplicates, shared draws first; ``inner`` are the
    shared draws found inside vmaps that the traced program runs itself."""
    events = [e for e in analysis.events if _live(e.use, analysis) and _live(e.first, analysis)]
    findings = [*inner, *_shared_findings(traced, analysis), *(event(e) for e in events)]
    counts = Counter(findings)
    unique = [dataclasses.replace(f, count=counts[f]) for f in dict.fromkeys(findings)]
    labels = tuple(traced.level_label(i) for i in range(len(traced.levels)))
    return AuditReport(traced.function, tuple(unique), len(analysis.sites), labels)


def _live(use: Use | None, analysis: Analysis) -> bool:
    """False for a draw whose values reach no output: it has no effect, so its key use is none."""
    return use is None or use.draw is None or use.draw in analysis.live


def _missing(traced: Traced, site: DrawSite) -> frozenset[int]:
    return frozenset(range(len(traced.levels))) - site.levels


def _shared_findings(traced: Traced, analysis: Analysis) -> list[Finding]:
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


def _shared_finding(traced: Traced, site: DrawSite, missing: frozenset[int]) -> Finding:
    unmapped = [i for i in sorted(site.sources) if not missing <= traced.in_levels[i]]
    named = [i for i in unmapped if traced.keys[i]] or unmapped
    return unmapped_key(draw_name(site.primitive, site.api), site.location,
                        along=" and ".join(traced.level_label(i) for i in sorted(missing)),
                        origins=[traced.names[i] for i in named] if site.sources else None,
                        closure=bool(site.consts), allowed=declared_shared(site.name_stack))
