"""Key-misuse analysis of per-example JAX functions (``keyfan.audit``) and the runtime check
for duplicated examples (``keyfan.check_independent``).

One concept per module: ``_values`` (marks and value numbers), ``_ledger`` (key consumption),
``_hashes`` (keyfan's inlined hash), ``_flow`` (the engine: one loop, one rule table),
``_loops`` (cond, scan, while), ``_trace`` (arguments and levels to a jaxpr), ``_findings`` and
``_report`` (what is reported), ``_render`` (rich), ``_specs`` (command-line arguments),
``_independent`` (the runtime check).
"""

from keyfan._audit._api import audit as audit
from keyfan._audit._report import AuditFinding as AuditFinding
from keyfan._audit._report import AuditKind as AuditKind
from keyfan._audit._report import AuditReport as AuditReport
from keyfan._audit._trace import AuditTraceError as AuditTraceError
from keyfan._independent import IndependenceReport as IndependenceReport
from keyfan._independent import check_independent as check_independent

__all__ = ["AuditReport", "AuditTraceError", "AuditFinding", "IndependenceReport", "AuditKind", "audit",
           "check_independent"]
