"""A ``keyfan ensemble`` run survives a kill: SIGKILL during ``save`` or between steps, then the
same command again, resumes from the newest complete checkpoint (a partial one is never read)
and ends with the bits of an uninterrupted run; a full disk or a directory made read-only mid-run
stops it with one clear line and leaves the previous checkpoint intact.

Every run is a real CLI process (``python -m keyfan ensemble``); the helper
(tests/_ensemble_kill.py) only chooses the moment the parent kills it.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests._xla_flags import compilation_cache_env

ROOT = pathlib.Path(__file__).resolve().parents[1]
ARGS = ["--members", "4", "--epochs", "4", "--seed", "3"]
"""4 members, 4 epochs of 8 steps (512 examples, batch 64): checkpoints at steps 8, 16, 24, 32."""
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "JAX_PLATFORMS": "cpu"}


@pytest.fixture(scope="module", autouse=True)
def shared_compilation_cache(tmp_path_factory):
    """JAX's persistent compilation cache for this module's CLI processes (about ten, each
    compiling the same training and evaluation programs): a later process loads what an earlier
    one compiled. An entry's key hashes the program's HLO, the compile options, the XLA flags
    (the ISA matrix's included) and the jaxlib version, so a resumed run whose program differed
    from the uninterrupted one would compile its own and show other bits; what the tests check
    (the checkpoints, what a resumed run restores, its final bits) is the run's, not the
    compiler's. A process killed while writing an entry leaves a file JAX reports and compiles
    past; the kills here come after the first epoch."""
    settings = compilation_cache_env(tmp_path_factory.mktemp("xla_cache"))
    ENV.update(settings)
    yield
    for name in settings:
        del ENV[name]


def cli(out: pathlib.Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keyfan", "ensemble", *ARGS, "-o", str(out), *extra], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=600)


def start(mode: str, out: pathlib.Path, marker: pathlib.Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests._ensemble_kill", mode, str(marker), *ARGS, "-o", str(out)],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(marker: pathlib.Path, child: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(f"the run ended before the marker: {child.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            child.kill()
            child.communicate()
            raise AssertionError("the run did not reach the marker in time")
        time.sleep(0.05)


def kill(child: subprocess.Popen) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=60)  # reaps it and closes its pipes
    assert child.returncode == -signal.SIGKILL


def steps(out: pathlib.Path) -> list[int]:
    """The complete checkpoints' steps (orbax's temporary directories are not steps)."""
    return sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())


def final_params(out: pathlib.Path, step: int | None = None) -> list[np.ndarray]:
    from keyfan.ensemble import restore
    from keyfan.ensemble._run import RunConfig, build

    _, like, _, _ = build(RunConfig(members=4, epochs=4, seed=3, out_dir=str(out)))
    state = restore(out / "checkpoints", like=like, step=step)
    return [np.asarray(a) for a in jax.tree.leaves((state.ensemble.params, state.opt_state, state.step))]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    done = cli(out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed" not in done.stdout
    return out


def assert_same_run(out: pathlib.Path, reference: pathlib.Path) -> None:
    for got, want in zip(final_params(out), final_params(reference), strict=True):
        np.testing.assert_array_equal(got, want)
    assert (out / "metrics.json").read_bytes() == (reference / "metrics.json").read_bytes()


@pytest.mark.slow
@pytest.mark.bitwise
def test_killed_during_save_resumes_from_the_last_complete_checkpoint(tmp_path, reference):
    out, marker = tmp_path / "run", tmp_path / "marker"
    child = start("save", out, marker)
    wait_for(marker, child)
    partial = pathlib.Path(marker.read_text())
    assert partial.exists() and partial.name.startswith("16.")  # written, not committed
    kill(child)
    assert steps(out) == [8]
    done = cli(out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from step 8 (after epoch 1 of 4)" in done.stdout
    assert_same_run(out, reference)
    assert steps(out) == [24, 32]  # max_to_keep: the newest two


@pytest.mark.slow
@pytest.mark.bitwise
def test_killed_between_steps_resumes_and_keeps_the_newest_two(tmp_path, reference):
    out, marker = tmp_path / "run", tmp_path / "marker"
    child = start("saved2", out, marker)
    wait_for(marker, child)
    kill(child)  # somewhere in epoch 3, between or inside its steps
    assert steps(out)[-1] == 16 and len(steps(out)) <= 2
    done = cli(out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from step 16 (after epoch 2 of 4)" in done.stdout
    assert_same_run(out, reference)
    again = cli(out)  # a finished run resumes at its end and changes nothing
    assert "resumed from step 32" in again.stdout
    assert_same_run(out, reference)


@pytest.mark.slow  # 13 CPU-s (a whole 4x4 run); default tier: the same refusal in-process in
# tests/test_ensemble_cli.py::test_same_seed_same_json_bytes_other_seed_other_numbers
def test_other_settings_in_the_output_directory_are_refused(tmp_path, reference):
    done = subprocess.run([sys.executable, "-m", "keyfan", "ensemble", "--members", "4", "--epochs", "4", "--seed",
                           "4", "-o", str(reference)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert "holds a run with other settings (seed differ)" in done.stderr
    assert "Traceback" not in done.stderr


def mounted_tmpfs(path: pathlib.Path, size: str) -> bool:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    if not mounted_tmpfs(disk, "420k"):
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); the full-disk tests run where it is allowed")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_one_line_and_keeps_the_last_checkpoint(small_disk):
    out = small_disk / "run"
    done = cli(out)
    assert done.returncode == 1, (done.stdout[-2000:], done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-3000:]  # no echo of the error from orbax's threads, tasks, callbacks
    last = lines[0]
    assert "could not write the checkpoint of step" in last and "No space left on device" in last
    kept = steps(out)
    assert kept and f"the checkpoint of step {kept[-1]} is intact" in last
    final_params(out)  # the newest complete checkpoint restores


@pytest.mark.slow
def test_a_directory_made_read_only_mid_run_keeps_the_last_checkpoint(small_disk, tmp_path):
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
    out, marker = small_disk / "run", tmp_path / "marker"
    child = start("saved1pause", out, marker)
    wait_for(marker, child)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    marker.with_name(marker.name + ".go").write_text("")
    _, stderr = child.communicate(timeout=300)
    assert child.returncode == 1, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-3000:]
    last = lines[0]
    assert "could not write the checkpoint of step 16" in last and "Read-only file system" in last, last
    assert "checkpoint of step 8 is intact" in last
    assert steps(out) == [8]
    final_params(out)
