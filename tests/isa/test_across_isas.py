"""Across instruction sets: keys, raw bits, integers and portable floats are the same bits.

Each ``--xla_cpu_max_isa`` setting (SSE4_2, AVX, AVX2, AVX512, and the machine's own) computes the
digests of ``tests/isa/_digests.py`` in a process of its own; everything keyfan promises to be
identical across machines must be. JAX's default floats are measured, not asserted:
``python -m tests.isa.test_across_isas`` prints which of them agree between which ISAs (the
table in docs/guides/reproducibility.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.isa import EMULATED, isa_env

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = (*EMULATED, "native")


def digests_under(isa: str) -> dict[str, list[str]]:
    proc = subprocess.run([sys.executable, "-m", "tests.isa._digests"], cwd=ROOT, env=isa_env(isa),
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"digests under {isa} failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def groups(per_isa: dict[str, dict[str, list[str]]], name: str) -> list[list[str]]:
    """The settings that give the same digest for ``name``, grouped."""
    by_digest: dict[str, list[str]] = {}
    for isa, values in per_isa.items():
        by_digest.setdefault(values[name][1], []).append(isa)
    return list(by_digest.values())


@pytest.mark.slow  # five processes, each compiling ~40 programs
@pytest.mark.bitwise
def test_keys_bits_integers_and_portable_floats_are_identical_on_every_isa():
    per_isa = {isa: digests_under(isa) for isa in SETTINGS}
    names = per_isa["native"]
    exact = [n for n, (kind, _) in names.items() if kind == "exact"]
    promised = ("key data", "raw bits", "randint", "bernoulli", "portable normal", "portable poisson",
                "raw bits: kf.bits uint32 threefry-legacy")
    missing = [p for p in promised if not any(n.startswith(p) for n in exact)]
    assert not missing, f"the digests lost what keyfan promises identical: {missing}"
    differ = {n: groups(per_isa, n) for n in exact if len(groups(per_isa, n)) > 1}
    assert not differ, f"promised identical on every ISA, but: {differ}"


def table(per_isa: dict[str, dict[str, list[str]]]) -> str:
    """Markdown: each draw, and which ISA settings give the same bits."""
    lines = ["| draw | promise | ISA settings with the same bits |", "| --- | --- | --- |"]
    for name, (kind, _) in per_isa["native"].items():
        found = groups(per_isa, name)
        shown = "all identical" if len(found) == 1 else " / ".join(" = ".join(g) for g in found)
        lines.append(f"| {name} | {'identical' if kind == 'exact' else 'JAX (measured)'} | {shown} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table({isa: digests_under(isa) for isa in SETTINGS}))
