"""keyfan's benchmark suite: speed as medians and ratios measured side by side in one process.

``keyfan bench`` runs :func:`keyfan._bench.suite.default_cases` through
:func:`keyfan._bench.runner.run_cases`, prints a table and writes JSON and a PNG chart. These are
measurements, not tests: the tests check correctness only.
"""

from keyfan._bench.runner import Case as Case
from keyfan._bench.runner import Result as Result
from keyfan._bench.runner import run_cases as run_cases
