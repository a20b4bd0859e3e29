"""Sharded sampling over 8 (CPU) devices: each device computes its own rows, no communication,
and the result is bit for bit the single-device draw.

Run: .venv/bin/python examples/sharded_sampling.py
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # imported after XLA_FLAGS is set: the device count is read at import
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import keyfan as kf

key = kf.key(1)
mesh = Mesh(np.array(jax.devices()), ("data",))
sharding = NamedSharding(mesh, PartitionSpec("data"))

sharded = kf.normal(key, batch=(1 << 16,), shape=(16,), sharding=sharding)
single = kf.normal(key, batch=(1 << 16,), shape=(16,))
assert np.asarray(sharded).tobytes() == np.asarray(single).tobytes()

# Chunked generation (bounded working memory) gives the same bits too.
chunked = kf.normal(key, batch=(1 << 16,), shape=(16,), chunk_size=4096)
assert np.asarray(chunked).tobytes() == np.asarray(single).tobytes()
print(f"{len(jax.devices())} devices: sharded == chunked == single-device draw;",
      "shards:", [s.data.shape for s in sharded.addressable_shards][:2], "...")
