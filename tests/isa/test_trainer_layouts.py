"""The Trainer's layouts in one 4-device process: the bits of one device, whatever the ISA.

Issue 21 found the ``Trainer``'s headline promise broken off the development machine: on an
AVX2-only CPU, 8 members spread over 4 devices (2 per device) trained to other bits than on one
device, and groups of 2 members differed from one vmap over all 8 under every ISA setting (XLA
chose its matmul library, blocking and reduction splits by the size of the member-batched
operation). The Trainer now runs one single-member program per member and block; this test
reruns the layout that broke, at the hidden width (256) where it broke: one device against 2
members on each of 4 devices (mesh 4x1). It is a ``bitwise`` test: the default tier's ISA
matrix (``test_isa_matrix.py``) reruns it under ``--xla_cpu_max_isa=AVX2``, the slow tier under
``SSE4_2`` and ``AVX2``, and natively it runs in the slow tier (29 CPU-s measured with mesh 2x2
as well, which ``test_ensemble_arrangements.py`` covers; the AVX2 subset with it costs 48 CPU-s).
Its subprocess keeps the ISA flag of the process that starts it (``tests/_xla_flags.py``). Every
arrangement, at two widths, under each ISA:
``tests/test_ensemble_arrangements.py``; 1/2/4/8 devices and chunks: ``tests/test_ensemble_layout.py``
(both in the ``slow`` tier).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._xla_flags import device_count_env

ROOT = Path(__file__).resolve().parents[2]
LAYOUTS = ("default", "mesh 4x1")
"""Names of ``tests._ensemble_isa.ARRANGEMENTS``; "default" is one device, one member per loop step."""
HIDDEN = 256


def digests_under_this_isa() -> dict[str, dict[str, str]]:
    """``{layout: {result: digest}}`` from a 4-device process with this process's other XLA flags."""
    env = {**device_count_env(4), "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
           "JAX_PLATFORMS": "cpu"}
    code = ("import json; from tests._ensemble_isa import ARRANGEMENTS, run; "
            f"print(json.dumps({{n: json.loads(run({HIDDEN}, **ARRANGEMENTS[n])) for n in {LAYOUTS!r}}}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # natively; the default tier's ISA matrix names it under AVX2
@pytest.mark.bitwise
@pytest.mark.multidevice
def test_members_spread_over_devices_train_to_the_bits_of_one_device():
    found = digests_under_this_isa()
    one = found.pop("default")
    assert set(one) == {"params", "opt_state", "keys", "step", "losses", "predict"}
    assert len(set(one.values())) == len(one), "distinct results must have distinct digests"
    isa = os.environ.get("XLA_FLAGS", "(native)")
    for layout, digests in found.items():
        moved = sorted(name for name in one if digests[name] != one[name])
        assert not moved, f"{layout} (member x data devices) differs from one device in {moved} under {isa}"
