#!/usr/bin/env python3
"""keyfan's two commands, each doing its own set-up: ``python3 dev.py run`` and ``python3 dev.py test``.

Needs only Python >= 3.11 and access to the package registry. On first use (or whenever
``pyproject.toml`` or ``requirements/constraints.txt`` change) it creates ``.venv`` and installs
keyfan with its pinned dependencies; afterwards it starts at once.

  python3 dev.py run [ARGS]    the main job (`keyfan ensemble` by default; ARGS: any keyfan command)
  python3 dev.py test [ARGS]   ruff, then the default tier (`-m "not slow"`, minutes; it builds the docs
                               too). ARGS go to pytest; `-m EXPR` replaces the tier's marker expression
  python3 dev.py test --full   ruff, then every tier, slow included, then the compat subset on the lowest
                               JAX: what CI runs (.ci/run)
  python3 dev.py test --compat [lowest|newest] [ARGS]
                               the compatibility subset (-m compat, tests/_compat.py) in .venv-lowest (the
                               lowest supported set, requirements/constraints-lowest.txt) or .venv-newest
                               (the newest release of JAX and every dependency, upgraded on each run)
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
import threading
import venv
from collections.abc import Callable
from pathlib import Path
from typing import IO

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


_COMPAT_BUILD: threading.Thread | None = None
"""The full run's background build of ``.venv-lowest`` (see :func:`build_compat_env_in_background`)."""


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
    if command == "test" and "--full" in rest:
        build_compat_env_in_background()
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
    # Two workers, handed one test at a time as they free up (--maxschedchunk=1): xdist's default
    # gives each worker a contiguous quarter of the tests up front, so the minutes-long tests, which
    # start first (tests/conftest.py LONGEST_FIRST), would all land on one worker.
    workers = [] if any(a.startswith("-n") for a in pytest_args) else ["-n", "2", "--maxschedchunk=1"]
    tier = [] if full or any(a.startswith("-m") for a in pytest_args) else ["-m", DEFAULT_TIER]
    stages: list[tuple[str, list[str | Path]]] = [
        ("ruff", [BIN / "ruff", "check", "src", "tests", "benchmarks", "examples", "dev.py"]),
        ("every tier" if full else "default tier",
         [PYTHON, "-m", "pytest", *workers, "--durations=15", *tier, *pytest_args]),
    ]
    # Later tiers of the full (CI) run append their stages here, after the main suite.
    if full:
        stages.append((COMPAT_STAGE, [sys.executable, ROOT / "dev.py", "test", "--compat"]))
    return stages


def test(args: list[str]) -> int:
    """Runs the test stages (``--compat``: the compatibility subset instead); see :func:`run_stages`."""
    which, args = compat_args(args)
    if which is not None:
        return compat(which, args)
    full = "--full" in args
    pytest_args = [a for a in args if a != "--full"]
    return run_stages(test_stages(full, pytest_args), before=_wait_for_compat_build)


def run_stages(stages: list[tuple[str, list[str | Path]]], before: Callable[[str], None] | None = None) -> int:
    """Runs every stage in order, a failed one included, so one run shows every stage's failures
    (a run that stopped at its first failure once hid a failing compat stage behind a slow-tier
    failure), then prints each stage's outcome. ``before(name)`` runs before each stage. Returns
    the first failing stage's exit code, or 0."""
    outcomes: list[tuple[str, int]] = []
    for name, cmd in stages:
        if before is not None:
            before(name)
        print(f"[dev] {name}: {' '.join(str(c) for c in cmd)}", flush=True)
        outcomes.append((name, _run(cmd)))
        if outcomes[-1][1]:
            print(f"[dev] {name} failed with exit code {outcomes[-1][1]}.", file=sys.stderr, flush=True)
    failed = [(name, code) for name, code in outcomes if code]
    summary = ", ".join(f"{name}: {'exit code ' + str(code) if code else 'passed'}" for name, code in outcomes)
    print(f"[dev] {'FAILED' if failed else 'passed'}: {summary}", file=sys.stderr if failed else sys.stdout,
          flush=True)
    return failed[0][1] if failed else 0


# -- the compatibility subset on the lowest and the newest JAX (python3 dev.py test --compat) ------

COMPAT_STAGE = "compat subset on the lowest JAX"
COMPAT_BUILD_LOG = ROOT / ".venv-lowest.build.log"


def build_compat_env_in_background() -> None:
    """Starts building ``.venv-lowest`` in a thread, so the full run's downloads and installs (minutes
    on a fresh machine, mostly network) overlap the main environment's install and the test tiers
    instead of following them. Its output goes to ``.venv-lowest.build.log``; if it fails, the compat
    stage builds the environment again in the foreground and shows why."""
    global _COMPAT_BUILD

    def build() -> None:
        with open(COMPAT_BUILD_LOG, "w") as log:
            try:
                _compat_python("lowest", log=log)
            except SystemExit as failure:  # the compat stage retries in the foreground and reports it
                print(failure, file=log, flush=True)

    print(f"[dev] building .venv-lowest in the background (log: {COMPAT_BUILD_LOG.name})", flush=True)
    _COMPAT_BUILD = threading.Thread(target=build, name="build .venv-lowest", daemon=True)
    _COMPAT_BUILD.start()


def _wait_for_compat_build(stage: str) -> None:
    """Before the compat stage: waits for the background build, so two builds never share a directory."""
    if stage == COMPAT_STAGE and _COMPAT_BUILD is not None:
        _COMPAT_BUILD.join()

CONSTRAINTS_LOWEST = ROOT / "requirements" / "constraints-lowest.txt"
COMPAT_ENVS = {"lowest": ROOT / ".venv-lowest", "newest": ROOT / ".venv-newest"}
COMPAT_PACKAGES = ["jax", "jaxlib", "numpy", "flax", "optax", "orbax-checkpoint", "typer", "rich", "matplotlib",
                   "pytest", "pytest-xdist", "hypothesis", "equinox", "psutil"]
"""What the compatibility subset needs: keyfan's core and extras, and the test tools."""


def _compat_python(which: str, log: IO[str] | None = None) -> Path:
    """The Python of ``.venv-lowest`` or ``.venv-newest``, built (or refreshed) first.

    ``.venv-lowest`` installs keyfan and the lowest supported set pinned in
    ``requirements/constraints-lowest.txt``, and is re-created only when that file or
    ``pyproject.toml`` changes. ``.venv-newest`` is upgraded to the newest release of every
    package on each run (keyfan installed without its version caps), which is how a new JAX
    release is checked before the declared range widens. ``log``: a file for pip's output
    (default: the terminal).
    """
    env = COMPAT_ENVS[which]
    python = env / ("Scripts" if os.name == "nt" else "bin") / "python"
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if which == "lowest":
        stamp = env / ".keyfan-installed"
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in (ROOT / "pyproject.toml", CONSTRAINTS_LOWEST)))
        if stamp.exists() and stamp.read_text() == digest.hexdigest() and python.exists():
            return python
        print(f"[dev] building {env.name} from {CONSTRAINTS_LOWEST.relative_to(ROOT)}", file=log, flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
        # keyfan's flax extra needs a newer JAX than the core's lowest: flax, optax and orbax come in
        # as the tests' tools at the versions pinned there (the ensemble test skips below the extra's floor).
        steps = [[*pip, "-c", CONSTRAINTS_LOWEST, "-e", ".[cli]", *COMPAT_PACKAGES]]
    else:
        if not python.exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(env)
        print(f"[dev] upgrading {env.name} to the newest releases", flush=True)
        steps = [[*pip, "--upgrade", "--upgrade-strategy", "eager", *COMPAT_PACKAGES],
                 [*pip, "--no-deps", "-e", "."]]
    for step in steps:
        if _run(step, stdout=log, stderr=log):
            sys.exit(f"[dev] building {env.name} failed: {' '.join(map(str, step))}")
    if which == "lowest":
        stamp.write_text(digest.hexdigest())
    return python


def compat(which: str, pytest_args: list[str]) -> int:
    """Runs the compatibility subset (``-m compat``, tests/_compat.py) in ``.venv-<which>``."""
    if which not in COMPAT_ENVS:
        print(f"[dev] --compat takes lowest or newest, got {which!r}.", file=sys.stderr)
        return 2
    python = _compat_python(which)
    _run([python, "-c", "import importlib.metadata as m; print('[dev]', ', '.join(f'{p} {m.version(p)}' for p in "
                        "('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'numpy')))"])
    workers = [] if any(a.startswith("-n") for a in pytest_args) else ["-n", "2"]
    named = any(not a.startswith("-") and (ROOT / a.split("::")[0]).exists() for a in pytest_args)
    paths = [] if named else compat_files()
    cmd = [python, "-m", "pytest", *workers, "-p", "no:cacheprovider", "-m", "compat", *pytest_args, *paths]
    print(f"[dev] compat subset on the {which} versions: {' '.join(map(str, cmd))}", flush=True)
    return _run(cmd)


def compat_files() -> list[str]:
    """The test files of the compatibility subset: the keys of ``COMPAT`` in tests/_compat.py and
    the files that mark tests ``@pytest.mark.compat`` themselves. Only these are collected, so a
    test module importing a tool the compat environments lack (diffrax, griffe, ...) is no error."""
    import ast

    tree = ast.parse((ROOT / "tests" / "_compat.py").read_text())
    table = next(node.value for node in tree.body if isinstance(node, ast.AnnAssign)
                 and getattr(node.target, "id", "") == "COMPAT" and node.value is not None)
    files = set(ast.literal_eval(table))
    files |= {str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py") if "mark.compat" in p.read_text()}
    return sorted(files)


def compat_args(args: list[str]) -> tuple[str | None, list[str]]:
    """``--compat [lowest|newest]`` (or ``--compat=...``) taken out of ``args``: (which or None, the rest)."""
    for i, arg in enumerate(args):
        if arg.startswith("--compat="):
            return arg.split("=", 1)[1], args[:i] + args[i + 1:]
        if arg == "--compat":
            if args[i + 1:i + 2] and args[i + 1] in COMPAT_ENVS:
                return args[i + 1], args[:i] + args[i + 2:]
            return "lowest", args[:i] + args[i + 1:]
    return None, args


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
