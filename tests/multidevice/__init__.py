"""Multi-device tests. Each runs JAX in a fresh subprocess, because the number of CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``) is fixed when JAX is imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests._xla_flags import device_count_env


def run_python(code: str, *, devices: int = 8, timeout: float = 600, extra_env: dict | None = None) -> str:
    """Runs ``code`` in a new Python process with ``devices`` CPU devices; returns its stdout.

    Raises AssertionError with the process's output if it exits non-zero.
    """
    env = device_count_env(devices)  # keeps the other XLA flags (the ISA matrix's instruction set)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.update(extra_env or {})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"subprocess failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout
