"""``XLA_FLAGS`` for test subprocesses: add or replace one flag, keep the others.

XLA reads ``XLA_FLAGS`` once, when JAX is imported, so a test that needs another device count
(``--xla_force_host_platform_device_count``) or another CPU instruction set
(``--xla_cpu_max_isa``, the ISA matrix of ``tests/isa``) starts a process with its own flags.
A subprocess started by a test that itself runs under the ISA matrix must keep the matrix's
instruction set: this module merges flags instead of overwriting them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def merged(flags: str | None, **updates: str | None) -> str:
    """``flags`` with each ``--name=value`` of ``updates`` set (``None`` removes the flag); the
    other flags keep their order."""
    kept = [f for f in (flags or "").split() if f.removeprefix("--").split("=", 1)[0] not in updates]
    kept += [f"--{name}={value}" for name, value in updates.items() if value is not None]
    return " ".join(kept)


def env_with(env: Mapping[str, str] | None = None, **updates: str | int | None) -> dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) whose ``XLA_FLAGS`` has ``updates`` merged in."""
    out = dict(os.environ if env is None else env)
    flags = merged(out.get("XLA_FLAGS"), **{k: None if v is None else str(v) for k, v in updates.items()})
    if flags:
        out["XLA_FLAGS"] = flags
    else:
        out.pop("XLA_FLAGS", None)
    return out


def device_count_env(devices: int, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` with ``devices`` host CPU devices and every other XLA flag (the ISA) kept."""
    return env_with(env, xla_force_host_platform_device_count=devices)


def compilation_cache_env(directory: str | os.PathLike[str]) -> dict[str, str]:
    """Environment variables that make a JAX process read and write its persistent compilation
    cache in ``directory``, every program included (no minimum compile time or size). An entry's
    key hashes the program's HLO, the compile options, the XLA flags and the jaxlib version, so
    only an identical program is loaded; entries are written without a lock, so processes that
    run at the same time should not share one directory."""
    return {"JAX_COMPILATION_CACHE_DIR": str(directory), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
