"""The Trainer's bits do not depend on the arrangement of its members, on any CPU instruction set.

Every arrangement -- one member per step of the loop over members (the default), two or four per
step, members spread over 4 devices (2 each), over 2 devices with the data on 2, the data over 4
-- must give the bits of one device's default, under ``--xla_cpu_max_isa=SSE4_2``, ``AVX2`` and
the machine's own ISA (each in its own process: XLA reads the flag at import), with either form
of the step's products (``"elementwise"``: the members of a device in one vmap; ``"gemm"``: one
member per step of a loop). Two widths of the hidden layer: 32, and 256, where XLA's choice of
kernel library by operation size used to split groupings apart (issue 21). The 1/2/4/8-device
test with one member per device is tests/test_ensemble_layout.py; it runs the mesh arrangements
at width 32 with elementwise products (its 4x1, 2x2 and 1x4 layouts, under the same ISA
settings), so this test's process leaves those three out (``tests._ensemble_isa.ON_THE_LAYOUT_TEST``).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests._ensemble_isa import ARRANGEMENTS, ON_THE_LAYOUT_TEST

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.bitwise
@pytest.mark.multidevice
@pytest.mark.parametrize("isa", ["SSE4_2", "AVX2", None], ids=["SSE4_2", "AVX2", "native"])
def test_every_arrangement_gives_the_bits_of_one_device_under_every_isa(isa):
    flags = "--xla_force_host_platform_device_count=4" + ("" if isa is None else f" --xla_cpu_max_isa={isa}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "XLA_FLAGS": flags,
           "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-m", "tests._ensemble_isa"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    left_hidden, left_products, left = ON_THE_LAYOUT_TEST
    for hidden in (32, 256):
        for products in ("elementwise", "gemm"):
            prefix = f"hidden={hidden} products={products} "
            mine = {name: digests for name, digests in results.items() if name.startswith(prefix)}
            reference = mine.pop(prefix + "default")
            expected = set(ARRANGEMENTS) - {"default"}
            if (hidden, products) == (left_hidden, left_products):
                expected -= set(left)
            assert set(mine) == {prefix + name for name in expected}, sorted(results)
            for name, digests in mine.items():
                assert digests == reference, f"{name} differs from one device's default under {isa or 'native'}"
