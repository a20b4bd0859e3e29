"""Reading a benchmark run: ratios within groups, the performance targets, JSON and a PNG chart."""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from keyfan._bench.runner import Result
from keyfan._bench.suite import TARGET_SHAPES, shape_group

__all__ = ["ratios", "targets", "machine", "write_json", "write_png"]


SPREAD_GROUPS = tuple(shape_group(*shape) for shape in TARGET_SHAPES)
"""The groups of the per-output spread target (the target shape set); the suite's extra odd-N
shape is reported beside them but is not part of the target."""


def _baseline(results: Sequence[Result], group: str, role: str) -> Result | None:
    return next((r for r in results if r.group == group and r.role == role), None)


def ratios(results: Sequence[Result]) -> dict[str, dict[str, float | None]]:
    """For each case, its speed-up over its group's canonical and numpy cases (baseline time /
    case time: above 1 means faster than the baseline)."""
    out = {}
    for r in results:
        row: dict[str, float | None] = {}
        for role in ("canonical", "numpy"):
            base = _baseline(results, r.group, role)
            row[f"vs_{role}"] = base.median_ms / r.median_ms if base is not None else None
        out[r.name] = row
    return out


def targets(results: Sequence[Result]) -> list[dict[str, Any]]:
    """The key core's performance targets, evaluated on this run (None where a case is missing)."""
    by_name = {r.name: r for r in results}
    checks = []

    def add(name: str, value: float | None, goal: float, higher_is_better: bool = True) -> None:
        met = None if value is None else (value >= goal if higher_is_better else value <= goal)
        checks.append({"target": name, "value": value, "goal": goal, "met": met})

    kf6 = by_name.get("keyfan normal N=1e6 (jit)")
    for label, other in (("vs canonical split+vmap", "2a vmap(normal)(split(key, 1e6))"),
                         ("vs one-key draw", "2b one-key normal(key, (1e6,))"),
                         ("vs numpy", "2c numpy default_rng().normal(1e6)")):
        base = by_name.get(other)
        goal = {"vs canonical split+vmap": 6.0, "vs one-key draw": 1.2, "vs numpy": 3.0}[label]
        add(f"keyfan normal N=1e6 speed-up {label}",
            None if kf6 is None or base is None else base.median_ms / kf6.median_ms, goal)
    per_output = [r.ns_per_output for r in results if r.role == "keyfan" and r.group in SPREAD_GROUPS]
    spread = max(per_output) / min(per_output) if per_output else None
    add("keyfan jit: slowest / fastest time per output over N x n = 1e6x1, 1e5x10, 1e6x3, 1e3x128, 1e4x1000",
        spread, 1.5,
        higher_is_better=False)
    for r in results:  # the ensemble targets are set at 350 members (init) and K = 32 (train step)
        if r.group == "ensemble init" and ".350x" in r.name:
            add(f"{r.name}: median time (ms)", r.median_ms, 500.0, higher_is_better=False)
        if r.group.startswith("ensemble train step") and r.role == "keyfan" and r.name.endswith(".K32"):
            base = _baseline(results, r.group, "canonical")
            add(f"{r.name}: speed-up over the Python loop", base.median_ms / r.median_ms, 5.0)
        if r.role == "portable":  # the portable mode's cost, stated beside a generous ceiling
            base = _baseline(results, r.group, "keyfan")
            add(f"{r.group}: portable / default keyfan time", r.median_ms / base.median_ms, 4.0,
                higher_is_better=False)
        if r.role == "kf.vmap":
            base = _baseline(results, r.group, "canonical")
            add(f"{r.group}: time / hand-written split + vmap", r.median_ms / base.median_ms, 1.05,
                higher_is_better=False)
    return checks


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
    }


def write_json(path: Path, results: Sequence[Result], *, quick: bool) -> dict[str, Any]:
    """Writes the run (machine, every case, ratios, targets) as JSON; returns the document."""
    ratio = ratios(results)
    doc = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
        "cases": [
            {"name": r.name, "group": r.group, "role": r.role, "runs": r.runs, "calls_per_run": r.calls,
             "median_ms": r.median_ms,
             "p10_ms": r.p10_ms, "p90_ms": r.p90_ms, "outputs": r.outputs, "ns_per_output": r.ns_per_output,
             **ratio[r.name]}
            for r in results
        ],
        "targets": targets(results),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def write_png(path: Path, results: Sequence[Result]) -> None:
    """A horizontal bar chart of median times (log scale), one colour per role."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roles = sorted({r.role for r in results})
    colours = dict(zip(roles, plt.get_cmap("tab10")(np.arange(len(roles)) % 10), strict=True))
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(results) + 1.5))
    y = np.arange(len(results))[::-1]
    ax.barh(y, [r.median_ms for r in results], color=[colours[r.role] for r in results])
    ax.set_yticks(y, [r.name for r in results], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("median time per call (ms, log scale)")
    ax.set_title(f"keyfan bench — {machine()['cpu']}, jax {jax.__version__}")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[r]) for r in roles]
    ax.legend(handles, roles, fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
