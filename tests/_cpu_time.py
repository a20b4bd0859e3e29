"""CPU time per test, printed at the end of every run beside ``--durations``.

Wall time says little on a shared machine; CPU time (user + system, of the test process and of
the subprocesses it waited for) is what a test costs whatever else runs. Each phase (setup, call,
teardown) is measured in the process that runs it (an xdist worker too) and travels to the
terminal in the report's ``user_properties``; the summary gives the total, the share of the
``slow`` tier, and the 15 most expensive tests.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import pytest

_PROPERTY = "keyfan_cpu_s"


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _timed(item: pytest.Item):
    start = _cpu_seconds()
    try:
        return (yield)
    finally:
        item.user_properties.append((_PROPERTY, _cpu_seconds() - start))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _timed(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _timed(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item):
    return (yield from _timed(item))


class CpuTimes:
    """Collects each test's CPU seconds from its reports (on the xdist controller as well)."""

    def __init__(self, shown: int, json_path: str | None) -> None:
        self.shown, self.json_path = shown, json_path
        self.seconds: dict[str, float] = defaultdict(float)
        self.slow: set[str] = set()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # user_properties accumulates over the phases: only the newest entry belongs to this report.
        entries = [value for name, value in report.user_properties if name == _PROPERTY]
        if entries:
            self.seconds[report.nodeid] += entries[-1]
        if "slow" in report.keywords:
            self.slow.add(report.nodeid)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.seconds:
            return
        total = sum(self.seconds.values())
        slow = sum(s for n, s in self.seconds.items() if n in self.slow)
        write = terminalreporter.write_line
        terminalreporter.section(f"CPU time (process + subprocesses): {total:.0f} s over {len(self.seconds)} tests")
        write(f"slow tier: {slow:.0f} s over {len(self.slow)} tests; other tiers: {total - slow:.0f} s")
        ranked = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        for nodeid, seconds in ranked[: self.shown]:
            write(f"{seconds:8.2f}s cpu  {nodeid}")
        if self.json_path:
            with open(self.json_path, "w") as f:
                json.dump({n: {"cpu_s": round(s, 3), "slow": n in self.slow} for n, s in ranked}, f, indent=1)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("keyfan CPU time")
    group.addoption("--cpu-durations", type=int, default=15, metavar="N",
                    help="show the N tests that used the most CPU time (default 15)")
    group.addoption("--cpu-json", default=None, metavar="PATH",
                    help="write every test's CPU seconds to PATH as JSON")


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller (or a plain run) prints the summary
        plugin = CpuTimes(config.getoption("cpu_durations"), config.getoption("cpu_json"))
        config.pluginmanager.register(plugin, "keyfan-cpu-times")
