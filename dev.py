#!/usr/bin/env python3
"""keyfan's two commands, each doing its own set-up: ``python3 dev.py run`` and ``python3 dev.py test``.

Needs only Python >= 3.11 and access to the package registry. On first use (or whenever
``pyproject.toml`` or ``requirements/constraints.txt`` change) it creates ``.venv`` and installs
keyfan with its pinned dependencies; afterwards it starts at once.

  python3 dev.py run [ARGS]    the main job (`keyfan ensemble` by default; ARGS: any keyfan command)
  python3 dev.py test [ARGS]   ruff, then the default tier (`-m "not slow"`, minutes; it builds the docs
                               too). ARGS go to pytest; `-m EXPR` replaces the tier's marker expression
  python3 dev.py test --full   ruff, then every tier, slow included: what CI runs (.ci/run)
  python3 dev.py bench [ARGS]  the benchmark suite (`keyfan bench`), results in benchmarks/results/
  python3 dev.py docs [ARGS]   build the docs site strictly into site/ (`mkdocs build --strict`; ARGS go
                               to mkdocs build, e.g. `serve` is `.venv/bin/mkdocs serve`)
  python3 dev.py keyfan ARGS   any keyfan command
  python3 dev.py lock          re-pin requirements/constraints.txt from the current environment
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
STAMP = VENV / ".keyfan-installed"
MAIN_JOB = ["ensemble"]


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", CONSTRAINTS):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(cmd: list[str], **kwargs) -> int:
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, **kwargs)


def ensure_env() -> None:
    """Creates the virtual environment and installs the pinned dependencies if needed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may run under an older python3
        sys.exit(f"keyfan needs Python >= 3.11; this is {sys.version.split()[0]}.")
    if STAMP.exists() and STAMP.read_text() == _fingerprint() and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"[dev] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    print("[dev] installing keyfan and its pinned dependencies (first run takes a few minutes)", flush=True)
    code = _run([PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q",
                 "-c", CONSTRAINTS, "-e", ".[dev]"])
    if code:
        sys.exit(f"[dev] pip install failed with exit code {code}.")
    STAMP.write_text(_fingerprint())


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in ("run", "test", "bench", "docs", "keyfan", "lock"):
        print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
        return 2
    ensure_env()
    if command == "run":
        return _run([BIN / "keyfan", *(rest or MAIN_JOB)])
    if command == "bench":
        out = [] if any(a == "--out" or a.startswith("--out=") for a in rest) else ["--out", "benchmarks/results"]
        return _run([BIN / "keyfan", "bench", *out, *rest])
    if command == "docs":
        return _run([BIN / "mkdocs", "build", "--strict", *rest], env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    if command == "keyfan":
        return _run([BIN / "keyfan", *rest])
    if command == "lock":
        frozen = subprocess.check_output([PYTHON, "-m", "pip", "freeze", "--exclude-editable"], text=True)
        pins = [line for line in frozen.splitlines() if line and not line.startswith("keyfan")]
        header = ["# Exact versions the tests run against (pip freeze of a fresh environment on Python 3.11).",
                  "# Regenerate: python3 dev.py lock"]
        CONSTRAINTS.write_text("\n".join(header + pins) + "\n")
        STAMP.write_text(_fingerprint())
        return 0
    return test(rest)


DEFAULT_TIER = "not slow"
"""The default run's marker expression: everything but the ``slow`` tier."""


def test_stages(full: bool, pytest_args: list[str]) -> list[tuple[str, list[str | Path]]]:
    """The test run as named stages, each a command; ``--full`` adds every later tier.

    Every pytest stage prints the 15 slowest tests (``--durations=15``) and the CPU time per
    test (``tests/_cpu_time.py``), so regressions show in every run.
    """
    workers = [] if any(a.startswith("-n") for a in pytest_args) else ["-n", "2"]
    tier = [] if full or any(a.startswith("-m") for a in pytest_args) else ["-m", DEFAULT_TIER]
    stages: list[tuple[str, list[str | Path]]] = [
        ("ruff", [BIN / "ruff", "check", "src", "tests", "benchmarks", "examples", "dev.py"]),
        ("every tier" if full else "default tier",
         [PYTHON, "-m", "pytest", *workers, "--durations=15", *tier, *pytest_args]),
    ]
    # Later tiers of the full (CI) run append their stages here, after the main suite.
    return stages


def test(args: list[str]) -> int:
    """Runs the stages in order and stops at the first that fails."""
    full = "--full" in args
    pytest_args = [a for a in args if a != "--full"]
    for name, cmd in test_stages(full, pytest_args):
        print(f"[dev] {name}: {' '.join(str(c) for c in cmd)}", flush=True)
        code = _run(cmd)
        if code:
            print(f"[dev] {name} failed with exit code {code}.", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
