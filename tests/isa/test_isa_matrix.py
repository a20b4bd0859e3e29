"""Every bitwise test, rerun under other CPU instruction sets, each in a pytest process of its own.

A test marked ``@pytest.mark.bitwise`` asserts bits (keyfan equals the canonical JAX pattern,
golden values, row identity, the Trainer's layout invariance, checkpoint resume). XLA compiles for
the CPU it runs on, so each is rerun with ``XLA_FLAGS=--xla_cpu_max_isa=SSE4_2`` (no AVX, no fused
multiply-add) and ``AVX2`` (with FMA, no AVX-512), the other XLA flags kept (a test's own
subprocesses keep the setting: ``tests/_xla_flags.py``); the machine's own ISA is the suite's own
run. The default tier reruns a representative subset per setting (below; about 90 CPU-s for
both); the ``slow`` tier (``python3 dev.py test --full``, what CI runs) reruns all of them, in
three processes per setting, on the ``"threefry"`` stream (``tests/isa/_matrix_plugin.py`` says why
one stream suffices).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.isa import MATRIX, effective_isa, isa_env
from tests.isa._matrix_plugin import shard_files

ROOT = Path(__file__).resolve().parents[2]

CORE = (
    # streams: Threefry words, keys
    "tests/streams/test_threefry2x32.py::test_equals_jax_primitive_on_random_words",
    "tests/test_keys.py::test_nested_fan_out_is_hierarchical[threefry]",
    # golden values of keyfan's own words and portable draws, pinned for every ISA (every entry: slow tier)
    "tests/streams/test_golden.py::test_keyfan_golden_values",
    # samplers vs the canonical split + vmap pattern: the FMA-sensitive bits-to-value paths
    "tests/test_sample.py::test_sampler_equals_canonical[threefry-normal]",
    "tests/test_sample.py::test_sampler_equals_canonical[threefry-gumbel]",
    # portable floats: the NumPy reference, op by op
    "tests/test_portable.py::test_portable_draw_equals_its_numpy_reference[normal-threefry]",
)
REPRESENTATIVE = {
    # No FMA: the farthest from the development machine's arithmetic (no real machine runs JAX here:
    # jaxlib needs AVX). The remaining float paths and the transforms, kf.vmap; no Flax import.
    "SSE4_2": (*CORE,
               "tests/test_sample.py::test_sampler_equals_canonical[threefry-uniform]",
               "tests/test_sample.py::test_sampler_equals_canonical[threefry-truncated_normal]",
               "tests/test_transforms_identity.py::test_noise_inside_a_users_jitted_program_keeps_row_identity[float32]",
               "tests/test_vmap.py::test_different_equals_split_vmap_typed[threefry]"),
    # The ordinary cloud CPU without AVX-512, where the Trainer's layouts broke (issue 21): members
    # over 4 devices at the width that broke, member identity.
    "AVX2": (*CORE,
             "tests/isa/test_trainer_layouts.py::test_members_spread_over_devices_train_to_the_bits_of_one_device",
             "tests/test_ensemble.py::test_member_i_is_the_model_initialised_alone_with_at_key_i[4-linen]"),
}
"""The default tier's subset per ISA setting, chosen to stay within about 90 CPU-s for both:
measured 2026-12-07 (CPU time of the process and its subprocesses), 31 CPU-s under SSE4_2 and
48 under AVX2, 79 in all (one list of 30 tests under each had cost 122 + 118).
Every bitwise test runs under both in the slow tier, member groups, chunks and checkpoint resume
included."""

EMULATED_MATRIX = tuple(isa for isa in MATRIX if isa != "native")
"""The settings rerun here; "native" is the suite's own run."""

OWN_MATRIX = ("tests/isa/test_isa_matrix.py", "tests/isa/test_across_isas.py")
"""Files that start their own process per ISA setting: not rerun under another."""
OWN_MATRIX_TESTS = ("tests/test_ensemble_arrangements.py",)
"""Bitwise tests that already run themselves under SSE4_2, AVX2 and native (issue 24's)."""


def run_bitwise(isa: str, targets: list[str], markers: str = "bitwise") -> subprocess.CompletedProcess:
    """``pytest -m markers targets`` in a fresh process with XLA capped at ``isa``."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-m", markers,
           "-rf", *targets]
    return subprocess.run(cmd, cwd=ROOT, env=isa_env(isa), capture_output=True, text=True, timeout=3 * 3600)


def failures(proc: subprocess.CompletedProcess) -> list[str]:
    """The ids of the failed tests in a ``pytest -rf`` output."""
    return re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, flags=re.M)


def check(isa: str, proc: subprocess.CompletedProcess) -> None:
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "(no output)"
    failed = failures(proc)
    assert proc.returncode == 0 and not failed, (
        f"bitwise tests fail under --xla_cpu_max_isa={isa} ({summary}):\n  " + "\n  ".join(failed)
        + f"\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    assert " passed" in summary, summary


def full_matrix_runs(session: pytest.Session, isa: str) -> bool:
    """Whether this session also runs every shard of the full matrix under ``isa`` (``--full``, CI)."""
    shards = {item.callspec.params["shard"] for item in session.items
              if getattr(item, "originalname", None) == "test_every_bitwise_test_under_isa"
              and item.callspec.params["isa"] == isa}
    return shards == set(range(1, SHARDS + 1))


@pytest.mark.parametrize("isa", EMULATED_MATRIX)
def test_representative_bitwise_tests_under_isa(isa, request):
    """The default tier's subset (named in full: a ``slow`` one among them runs too). A missing id
    is a collection error; one not marked ``bitwise`` would be deselected: both fail here. Where
    the same session runs the full matrix (every tier: CI), that run is this one and more: here
    the subset is only collected, so a renamed or unmarked id still fails."""
    if full_matrix_runs(request.session, isa):
        proc = run_bitwise(isa, ["--collect-only", *REPRESENTATIVE[isa]])
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert "deselected" not in proc.stdout.strip().splitlines()[-1], "a representative test is not marked bitwise"
        assert f"{len(REPRESENTATIVE[isa])} test" in proc.stdout.strip().splitlines()[-1], proc.stdout[-2000:]
        return
    proc = run_bitwise(isa, list(REPRESENTATIVE[isa]))
    check(isa, proc)
    assert "deselected" not in proc.stdout.strip().splitlines()[-1], "a representative test is not marked bitwise"


SHARDS = 3
"""Processes per setting in the full matrix: six items of similar length (``_matrix_plugin``), which
the outer run's xdist workers share, instead of two that one worker would run back to back."""


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(1, SHARDS + 1), ids=lambda k: f"shard{k}of{SHARDS}")
@pytest.mark.parametrize("isa", EMULATED_MATRIX)
def test_every_bitwise_test_under_isa(isa, shard):
    """The whole bitwise set, slow tier included, in :data:`SHARDS` processes per setting, on the
    ``"threefry"`` stream (the legacy stream differs only in integer raw bits, identical on every
    ISA: test_across_isas). A setting the suite's own run already compiles for (an AVX2 host) is
    that run: rerunning it would repeat it."""
    if effective_isa() == isa:
        pytest.skip(f"this run already compiles for {isa}: its own bitwise tests are the {isa} run")
    files = shard_files(shard, SHARDS, exclude=OWN_MATRIX + OWN_MATRIX_TESTS)
    check(isa, run_bitwise(isa, ["-p", "tests.isa._matrix_plugin", "--isa-one-stream", *files]))
