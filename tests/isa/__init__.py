"""The instruction-set matrix: keyfan's bitwise promises under other CPU instruction sets.

XLA compiles for the CPU it runs on, so one program can give other float bits on a machine with
other vector instructions (fused multiply-add from AVX2 on, wider vectors with AVX-512). XLA can
emulate an older CPU on this one: ``XLA_FLAGS=--xla_cpu_max_isa=SSE4_2`` (or ``AVX``, ``AVX2``,
``AVX512``), read when JAX is imported, so each setting runs in a process of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

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
