"""dev.py's test tiers: the default run leaves out the slow tier, the full run (CI) keeps every
tier, every run prints the slowest tests, and .ci/run and the README name the same CI command."""

from __future__ import annotations

import pathlib
import sys
import threading
import time

import dev

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _pytest_args(full: bool, args: list[str]) -> list[str]:
    stages = dict(dev.test_stages(full, args))
    assert next(iter(stages)) == "ruff"
    command = [str(c) for c in stages["every tier" if full else "default tier"]]
    assert command[1:3] == ["-m", "pytest"]
    return command[3:]


def test_default_run_is_the_not_slow_tier_with_durations():
    args = _pytest_args(False, ["-q"])
    assert args[args.index("-m") + 1] == "not slow"
    assert "--durations=15" in args and args[-1] == "-q"


def test_full_run_selects_every_tier():
    args = _pytest_args(True, [])
    assert "-m" not in args and "--durations=15" in args
    # one test at a time to each worker, so the longest tests (started first) are shared
    assert args[args.index("-n") + 1] == "2" and "--maxschedchunk=1" in args


def test_a_marker_expression_replaces_the_default_tier():
    args = _pytest_args(False, ["-m", "slow"])
    assert args.count("-m") == 1 and args[args.index("-m") + 1] == "slow"


def test_ci_runs_the_full_command_the_readme_names():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == "python3 dev.py test --full"
    assert "`python3 dev.py test --full` is the CI command" in (ROOT / "README.md").read_text()


def test_every_stage_runs_after_a_failure_and_the_first_failure_is_the_exit_code(capfd):
    stages = [("first", [sys.executable, "-c", "raise SystemExit(3)"]),
              ("second", [sys.executable, "-c", "print('second ran')"]),
              ("third", [sys.executable, "-c", "raise SystemExit(5)"])]
    assert dev.run_stages(stages) == 3
    out, err = capfd.readouterr()
    assert "second ran" in out
    assert "[dev] FAILED: first: exit code 3, second: passed, third: exit code 5" in err
    assert dev.run_stages(stages[1:2]) == 0
    assert "[dev] passed: second: passed" in capfd.readouterr().out


def test_the_compat_stage_waits_for_the_background_build_of_its_environment(monkeypatch):
    """The full run builds .venv-lowest in a thread from the start; the compat stage (which would
    otherwise build the same directory itself) starts only once that thread has ended."""
    finished = threading.Event()
    build = threading.Thread(target=lambda: (time.sleep(0.3), finished.set()))
    monkeypatch.setattr(dev, "_COMPAT_BUILD", build)
    build.start()
    seen = []
    stages = [("every tier", [sys.executable, "-c", "pass"]), (dev.COMPAT_STAGE, [sys.executable, "-c", "pass"])]
    assert dev.run_stages(stages, before=lambda name: (dev._wait_for_compat_build(name),
                                                       seen.append((name, finished.is_set())))) == 0
    assert seen == [("every tier", False), (dev.COMPAT_STAGE, True)]
    assert dict(dev.test_stages(True, []))[dev.COMPAT_STAGE][-2:] == ["test", "--compat"]
