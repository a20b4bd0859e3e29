"""keyfan's benchmark suite: speed as medians and ratios measured side by side in one process.

``keyfan bench`` runs :func:`keyfan.bench.suite.default_cases` through
:func:`keyfan.bench.runner.run_cases`, prints a table and writes JSON and a PNG chart. These are
measurements, not tests: the tests check correctness only.
"""

from keyfan.bench.runner import Case as Case
from keyfan.bench.runner import Result as Result
from keyfan.bench.runner import run_cases as run_cases
