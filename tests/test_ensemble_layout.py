"""Ensembles on 1, 2, 4 and 8 CPU devices: members over mesh axis "member", data over "data", same bits.

Each device count runs in its own process, because the number of CPU devices is fixed by
XLA_FLAGS before jax is imported.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests._xla_flags import device_count_env

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHUNKS = 4


def run_layouts(devices: int) -> dict:
    env = {**device_count_env(devices), "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
           "JAX_PLATFORMS": "cpu"}  # device_count_env keeps the other XLA flags (the ISA matrix's)
    done = subprocess.run([sys.executable, "-m", "tests._ensemble_layout", str(devices), str(CHUNKS)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.multidevice
@pytest.mark.bitwise
def test_training_and_prediction_are_bitwise_equal_on_1_2_4_and_8_devices_and_any_chunks():
    single = run_layouts(1)
    one = single.pop("1x1")
    assert set(single) == {"1x1 chunks=1 block_size=8", "1x1 chunks=2 block_size=8"}
    for setting, digests in single.items():
        assert digests == one, f"{setting} differs from chunks={CHUNKS} (blocks of 8 either way)"
    eight = run_layouts(8)
    assert "must give each device the same number of members" in eight.pop("unequal_member_blocks")
    assert set(eight) == {"2x1", "1x2", "4x1", "2x2", "1x4", "8x1", "4x2", "2x4"}
    for layout, digests in eight.items():
        assert digests == one, f"layout {layout} (member x data devices) differs from one device"
    # the rule runs elementwise products at width 32: test_ensemble_arrangements leaves its mesh
    # arrangements at that width and form to this test (tests._ensemble_isa.ON_THE_LAYOUT_TEST)
    assert one.pop("products") == "elementwise"
    assert len(set(one.values())) == len(one), "distinct results must have distinct digests"
