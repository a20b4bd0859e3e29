"""Per-example Gaussian noise from one seed: fast, canonical, and recomputable row by row.

Run: .venv/bin/python examples/per_example_noise.py
"""

import jax
import jax.numpy as jnp

import keyfan as kf

key = kf.key(2026)
images = jnp.zeros((1024, 28, 28))

# One call draws a different noise field for every example (fused split + draw).
noise = kf.normal(key, batch=(1024,), shape=(28, 28))
noisy = images + 0.1 * noise

# It is exactly the canonical pattern: split the key, vmap the per-example draw.
canonical = jax.vmap(lambda k: jax.random.normal(k, (28, 28)))(kf.fan_out(key, (1024,)))
assert (noise == canonical).all()

# Example 517's noise, recomputed alone from its coordinate, without the batch.
assert (noise[517] == jax.random.normal(kf.at(key, 517), (28, 28))).all()

# Growing the batch keeps every existing example's noise.
assert (kf.normal(key, batch=(2048,), shape=(28, 28))[:1024] == noise).all()

# The bug keyfan exists to kill: a key broadcast over the batch gives every example the same noise.
shared = jax.vmap(lambda x, k: x + 0.1 * jax.random.normal(k, x.shape), in_axes=(0, None))(images, key)
assert (shared[0] == shared[1]).all()
print("per-example noise: rows distinct:", bool((noisy[0] != noisy[1]).any()),
      "| broadcast-key rows identical:", bool((shared[0] == shared[1]).all()))
