"""Timing cases side by side: warm-up, ``block_until_ready``, round-robin repeats, medians.

Each timed sample is the mean of ``calls`` back-to-back calls, every call blocked until its result
is ready, with ``calls`` chosen after warm-up so that a sample lasts about ``min_sample_ms``
(``timeit``'s autorange). On a shared 2-core machine a single sub-millisecond call is bimodal
(whether a worker thread was awake or not), which made the median of 21 single calls of a 0.5 ms
case jump by 1.7x between runs; the mean over a few milliseconds of calls is what a training loop
sees, and its median is stable. Calls of about 5 ms are bimodal too (5.2 or 8.5 ms for
``kf.vmap`` at 1e6 x 1, both programs alike), and a median of single calls landed in either mode
(ratios of 0.98 to 1.19 between identical programs over three runs); so a sample lasts 20 ms by
default.
"""

from __future__ import annotations

import dataclasses
import math
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
    """Timings of one case, in milliseconds per call: quantiles over ``runs`` samples after warm-up."""

    name: str
    group: str
    role: str
    outputs: int
    runs: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    calls: int = 1
    """Calls averaged in each of the ``runs`` samples."""

    @property
    def ns_per_output(self) -> float | None:
        return self.median_ms * 1e6 / self.outputs if self.outputs else None


def _time_once(fn: Callable[[], Any], calls: int = 1) -> float:
    """Mean milliseconds per call over ``calls`` calls, each blocked until its result is ready."""
    start = time.perf_counter()
    for _ in range(calls):
        jax.block_until_ready(fn())
    return (time.perf_counter() - start) * 1e3 / calls


def _calls_for(fn: Callable[[], Any], min_sample_ms: float) -> int:
    """How many calls make a sample of at least ``min_sample_ms`` (from the fastest of 3 calls)."""
    fastest = min(_time_once(fn) for _ in range(3))
    return max(1, math.ceil(min_sample_ms / max(fastest, 1e-3)))


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run_cases(cases: Iterable[Case], *, runs: int = 21, warmup: int = 2, min_sample_ms: float = 20.0,
              progress: Callable[[str], None] | None = None) -> list[Result]:
    """Times every case: ``warmup`` calls, then ``runs`` samples interleaved round-robin across the
    cases of each group (so a burst of machine noise hits all of them alike).

    Args:
      cases: the cases; their order is kept in the results.
      runs: timed samples per case (the median of these is reported).
      warmup: untimed calls first (compilation, caches).
      min_sample_ms: each sample averages enough calls to last about this long (0: one call).
      progress: called with a case name after each timed sample (for a progress bar).

    Returns:
      One :class:`Result` per case, in milliseconds per call.
    """
    cases = list(cases)
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ValueError(f"case names must be unique, got duplicates in {names}.")
    times: dict[str, list[float]] = {c.name: [] for c in cases}
    calls: dict[str, int] = {}
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    for members in groups.values():
        for case in members:
            for _ in range(warmup):
                jax.block_until_ready(case.fn())
            calls[case.name] = _calls_for(case.fn, min_sample_ms) if min_sample_ms > 0 else 1
        for _ in range(runs):
            for case in members:
                times[case.name].append(_time_once(case.fn, calls[case.name]))
                if progress is not None:
                    progress(case.name)
    return [
        Result(c.name, c.group, c.role, c.outputs, runs, statistics.median(times[c.name]),
               _quantile(times[c.name], 0.1), _quantile(times[c.name], 0.9), calls[c.name])
        for c in cases
    ]
