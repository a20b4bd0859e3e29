"""The instruction-set matrix: keyfan's bitwise promises under other CPU instruction sets.

XLA compiles for the CPU it runs on, so one program can give other float bits on a machine with
other vector instructions (fused multiply-add from AVX2 on, wider vectors with AVX-512). XLA can
emulate an older CPU on this one: ``XLA_FLAGS=--xla_cpu_max_isa=SSE4_2`` (or ``AVX``, ``AVX2``,
``AVX512``), read when JAX is imported, so each setting runs in a process of its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from tests._xla_flags import env_with

MATRIX = ("SSE4_2", "AVX2", "native")
"""The instruction sets every bitwise test runs under: SSE4_2 (no AVX, no FMA: the oldest x86-64
CPUs XLA supports), AVX2 (with FMA: most cloud VMs without AVX-512) and the machine's own."""

EMULATED = ("SSE4_2", "AVX", "AVX2", "AVX512")
"""Every ``--xla_cpu_max_isa`` setting (a setting above the machine's own ISA is the machine's)."""


def isa_env(isa: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default ``os.environ``) with XLA capped at ``isa`` ("native": no cap); the other
    XLA flags, such as a device count, are kept."""
    if isa != "native" and isa not in EMULATED:
        raise ValueError(f"isa must be one of {(*EMULATED, 'native')}, got {isa!r}.")
    return {**env_with(env, xla_cpu_max_isa=None if isa == "native" else isa), "JAX_PLATFORMS": "cpu"}


ORDER = {isa: i for i, isa in enumerate(EMULATED)}


def host_isa(cpuinfo: str | None = None) -> str | None:
    """The best ISA of :data:`EMULATED` this x86-64 CPU has (``/proc/cpuinfo``), or None if
    unknown (another OS or architecture)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    for isa, needs in (("AVX512", {"avx512f"}), ("AVX2", {"avx2", "fma"}), ("AVX", {"avx"}), ("SSE4_2", {"sse4_2"})):
        if needs <= flags:
            return isa
    return None


def effective_isa(env: Mapping[str, str] | None = None, host: str | None = None) -> str | None:
    """The ISA XLA compiles for in a process started with ``env``: the host's, capped by
    ``--xla_cpu_max_isa`` in ``XLA_FLAGS``; None if the host's is unknown."""
    env = os.environ if env is None else env
    host = host_isa() if host is None else host
    if host is None:
        return None
    match = re.search(r"--xla_cpu_max_isa=(\w+)", env.get("XLA_FLAGS", ""))
    cap = match.group(1).upper() if match else None
    if cap not in ORDER:
        return host
    return min(cap, host, key=ORDER.__getitem__)
