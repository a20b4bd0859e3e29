#!/usr/bin/env python3
"""keyfan's two commands, each doing its own set-up: ``python3 dev.py run`` and ``python3 dev.py test``.

Needs only Python >= 3.11 and access to the package registry. On first use (or whenever
``pyproject.toml`` or ``requirements/constraints.txt`` change) it creates ``.venv`` and installs
keyfan with its pinned dependencies; afterwards it starts at once.

  python3 dev.py run [ARGS]    the main job (`keyfan ensemble` by default; ARGS: any keyfan command)
  python3 dev.py test [ARGS]   ruff, then the whole test suite (ARGS go to pytest; it builds the docs too)
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
    code = _run([BIN / "ruff", "check", "src", "tests", "benchmarks", "examples", "dev.py"])
    if code:
        print("[dev] ruff found problems (see above).", file=sys.stderr)
        return code
    workers = ["-n", "2"] if not any(a.startswith("-n") for a in rest) else []
    return _run([PYTHON, "-m", "pytest", *workers, *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
