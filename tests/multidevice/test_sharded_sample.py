"""Sharded sampling: the same bits on 1, 2 and 8 devices, without communication, and across two
processes (``jax.distributed`` with gloo CPU collectives)."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest

from tests._xla_flags import device_count_env
from tests.multidevice import run_python

pytestmark = pytest.mark.multidevice


@pytest.mark.bitwise
def test_sharded_draws_equal_unsharded_on_1_2_and_8_devices():
    out = run_python("""
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        import keyfan as kf
        assert len(jax.devices()) == 8
        key = kf.key(3)
        lo = jnp.arange(64.0)[:, None]
        draws = {
            "normal": lambda s: kf.normal(key, batch=(64,), shape=(3,), sharding=s),
            "uniform_params": lambda s: kf.uniform(key, batch=(64,), shape=(3,), minval=lo, maxval=lo + 1, sharding=s),
            "bernoulli_chunked": lambda s: kf.bernoulli(key, batch=(64,), shape=(5,), p=0.3, chunk_size=3, sharding=s),
            "randint_offset": lambda s: kf.randint(key, batch=(64,), shape=(2,), minval=0, maxval=9, offset=2**33,
                                                   sharding=s),
            "legacy": lambda s: kf.normal(kf.key(3, "threefry-legacy"), batch=(64,), shape=(3,), sharding=s),
            "gathered_row_keys": lambda s: kf.normal(key, batch=(64,), shape=(9,), sharding=s),
            # large enough that every device's loop is paired (keyfan._flat): over values, and
            # over rows (one row of 5000 per device on 8 devices runs as two half-rows)
            "paired": lambda s: kf.uniform(key, batch=(65536,), minval=-1.0, maxval=1.0, sharding=s),
            "paired_rows": lambda s: kf.normal(key, batch=(8,), shape=(5000,), sharding=s),
        }
        reference = {name: np.asarray(draw(None)) for name, draw in draws.items()}
        collectives = ("all-gather", "all-reduce", "collective-permute", "all-to-all", "reduce-scatter")
        for n in (1, 2, 8):
            mesh = Mesh(np.array(jax.devices()[:n]), ("data",))
            sharding = NamedSharding(mesh, P("data"))
            for name, draw in draws.items():
                out = draw(sharding)
                assert out.sharding.is_equivalent_to(sharding, out.ndim), (name, n, out.sharding)
                assert np.asarray(out).tobytes() == reference[name].tobytes(), (name, n)
                hlo = jax.jit(lambda: draw(sharding)).lower().compile().as_text()
                assert not any(c in hlo for c in collectives), (name, n, "communication in the program")
                # Each device holds exactly its own rows.
                for shard in out.addressable_shards:
                    assert np.asarray(shard.data).tobytes() == reference[name][shard.index].tobytes()
        # A nested batch sharded over a 2 x 4 mesh, both batch axes sharded.
        mesh = Mesh(np.array(jax.devices()).reshape(2, 4), ("a", "b"))
        nested = kf.normal(key, batch=(4, 8), shape=(3,), sharding=NamedSharding(mesh, P("a", "b")))
        assert np.asarray(nested).tobytes() == np.asarray(kf.normal(key, batch=(4, 8), shape=(3,))).tobytes()
        both = kf.normal(key, batch=(16,), shape=(2,), sharding=NamedSharding(mesh, P(("a", "b"))))
        assert np.asarray(both).tobytes() == np.asarray(kf.normal(key, batch=(16,), shape=(2,))).tobytes()
        print("OK")
    """)
    assert out.strip().endswith("OK")


def test_sharding_errors_are_clear():
    out = run_python("""
        import jax, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        import keyfan as kf
        mesh = Mesh(np.array(jax.devices()), ("data",))
        for call, match in [
            (lambda: kf.normal(kf.key(0), batch=(10,), sharding=NamedSharding(mesh, P("data"))), "divisible"),
            (lambda: kf.normal(kf.key(0), batch=(8,), shape=(8,), sharding=NamedSharding(mesh, P(None, "data"))),
             "per-example"),
        ]:
            try:
                call()
            except ValueError as err:
                assert match in str(err), err
            else:
                raise AssertionError(match)
        print("OK")
    """)
    assert out.strip().endswith("OK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TWO_PROCESS_WORKER = """
import sys
import jax, numpy as np
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address="127.0.0.1:{port}", num_processes=2, process_id={pid},
                           local_device_ids=list(range(4)))
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import keyfan as kf
assert jax.device_count() == 8 and jax.local_device_count() == 4
mesh = Mesh(np.array(jax.devices()), ("data",))
key = kf.key(17)
out = kf.normal(key, batch=(64,), shape=(3,), sharding=NamedSharding(mesh, P("data")))
gathered = np.asarray(multihost_utils.process_allgather(out, tiled=True))
np.save(sys.argv[1], gathered)
jax.distributed.shutdown()
"""


@pytest.mark.bitwise
@pytest.mark.slow
def test_two_processes_times_four_devices_equal_one_process(tmp_path):
    port = _free_port()
    procs, files = [], []
    for pid in range(2):
        files.append(tmp_path / f"out{pid}.npy")
        code = textwrap.dedent(TWO_PROCESS_WORKER).format(port=port, pid=pid)
        env = {**device_count_env(4), "JAX_PLATFORMS": "cpu"}
        procs.append(subprocess.Popen([sys.executable, "-c", code, str(files[-1])], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"worker failed:\n{stdout}\n{stderr}"
    single = run_python("""
        import numpy as np, keyfan as kf
        print(np.asarray(kf.normal(kf.key(17), batch=(64,), shape=(3,))).tobytes().hex())
    """, devices=1).strip()
    import numpy as np
    for f in files:
        assert np.load(f).tobytes().hex() == single
