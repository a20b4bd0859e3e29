"""The audit corpus: small per-example functions, each with the verdict ``keyfan.audit`` must give.

Every module registers its snippets with :func:`bug` or :func:`ok` (``_case``); ``CASES`` collects
them all. ``tests/test_audit.py`` runs every snippet and reports precision and recall.
"""

from tests.audit_corpus import (  # noqa: F401  (importing a module registers its cases)
    closures,
    declared,
    loops,
    mapping,
    reuse,
    runtime,
    tiling,
    whole_program,
    wrappers,
)
from tests.audit_corpus._case import CASES, Case

__all__ = ["CASES", "Case"]
