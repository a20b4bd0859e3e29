"""Timing cases side by side: warm-up, ``block_until_ready``, round-robin repeats, medians."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax

__all__ = ["Case", "Result", "run_cases"]


@dataclasses.dataclass(frozen=True)
class Case:
    """One timed callable.

    Attributes:
      name: unique, human-readable name ("2a canonical split+vmap, N=1e6").
      group: cases compared with each other; repeats are interleaved within a group.
      fn: the work; its result is passed to ``jax.block_until_ready``.
      outputs: number of values it produces (for time per output), or 0.
      role: "canonical", "numpy", "one-key", "keyfan" or another label; ratios in a group are
        taken against its "canonical" and "numpy" cases.
    """

    name: str
    group: str
    fn: Callable[[], Any]
    outputs: int = 0
    role: str = ""


@dataclasses.dataclass(frozen=True)
class Result:
    """Timings of one case, in milliseconds, over ``runs`` repeats after warm-up."""

    name: str
    group: str
    role: str
    outputs: int
    runs: int
    median_ms: float
    p10_ms: float
    p90_ms: float

    @property
    def ns_per_output(self) -> float | None:
        return self.median_ms * 1e6 / self.outputs if self.outputs else None


def _time_once(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return (time.perf_counter() - start) * 1e3


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run_cases(cases: Iterable[Case], *, runs: int = 21, warmup: int = 2,
              progress: Callable[[str], None] | None = None) -> list[Result]:
    """Times every case: ``warmup`` calls, then ``runs`` calls interleaved round-robin across the
    cases of each group (so a burst of machine noise hits all of them alike).

    Args:
      cases: the cases; their order is kept in the results.
      runs: timed repeats per case (the median of these is reported).
      warmup: untimed calls first (compilation, caches).
      progress: called with a case name after each timed call (for a progress bar).

    Returns:
      One :class:`Result` per case.
    """
    cases = list(cases)
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ValueError(f"case names must be unique, got duplicates in {names}.")
    times: dict[str, list[float]] = {c.name: [] for c in cases}
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    for members in groups.values():
        for case in members:
            for _ in range(warmup):
                jax.block_until_ready(case.fn())
        for _ in range(runs):
            for case in members:
                times[case.name].append(_time_once(case.fn))
                if progress is not None:
                    progress(case.name)
    return [
        Result(c.name, c.group, c.role, c.outputs, runs, statistics.median(times[c.name]),
               _quantile(times[c.name], 0.1), _quantile(times[c.name], 0.9))
        for c in cases
    ]
