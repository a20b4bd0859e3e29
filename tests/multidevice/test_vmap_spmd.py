"""kf.vmap with ``spmd_axis_name`` on a real 4-device mesh: the batch axis is sharded over the
mesh axis inside the mapped function, exactly as ``jax.vmap`` does it, with the same bits."""

from __future__ import annotations

import pytest

from tests.multidevice import run_python

pytestmark = [pytest.mark.multidevice, pytest.mark.bitwise]


def test_spmd_axis_name_shards_the_batch_like_jax_vmap():
    out = run_python("""
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
        import keyfan as kf
        assert len(jax.devices()) == 4
        mesh = jax.make_mesh((4,), ("b",), axis_types=(AxisType.Auto,))

        def f(x, key):
            # Constrain ONE example's value; spmd_axis_name adds the batch axis over "b".
            y = jax.lax.with_sharding_constraint(x + jax.random.normal(key, x.shape), NamedSharding(mesh, P(None)))
            return y * 2.0

        xs = jnp.arange(8 * 6, dtype=jnp.float32).reshape(8, 6)
        key = kf.key(5)
        ours = jax.jit(kf.vmap(f, in_axes=(0, None), randomness="different", spmd_axis_name="b"))(xs, key)
        theirs = jax.jit(jax.vmap(f, spmd_axis_name="b"))(xs, kf.fan_out(key, 8))
        unnamed = jax.jit(kf.vmap(f, in_axes=(0, None), randomness="different"))(xs, key)
        # The batch axis is split over the 4 devices, 2 examples each, as jax.vmap does it ...
        assert ours.sharding.spec == theirs.sharding.spec == P("b"), (ours.sharding, theirs.sharding)
        assert {s.data.shape for s in ours.addressable_shards} == {(2, 6)}
        # ... and only because of spmd_axis_name: without it the constraint keeps the batch whole.
        assert unnamed.sharding.spec == P(), unnamed.sharding
        assert np.asarray(ours).tobytes() == np.asarray(theirs).tobytes()
        assert np.asarray(ours).tobytes() == np.asarray(unnamed).tobytes()
        print("OK")
    """, devices=4)
    assert out.strip().endswith("OK")
