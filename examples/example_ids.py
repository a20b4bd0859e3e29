"""Randomness tied to example ids, not batch positions: shuffling, padding and micro-batching a
dataset never change an example's augmentation noise, and any example's key can be recomputed.

Run: .venv/bin/python examples/example_ids.py
"""

import jax
import numpy as np

import keyfan as kf

key = kf.named(kf.key(0), "augment")
ids = np.arange(100)
step = 7


def noise_for(batch_ids: np.ndarray) -> jax.Array:
    keys = kf.example_keys(key, batch_ids, step=step)
    return jax.vmap(lambda k: jax.random.normal(k, (4,)))(keys)


reference = np.asarray(noise_for(ids))

# Shuffled order: each example keeps its own noise.
perm = np.random.default_rng(1).permutation(ids)
assert (np.asarray(noise_for(perm)) == reference[perm]).all()

# Micro-batches of 8, the last one padded with id 0: same noise for every real example.
for start in range(0, 100, 8):
    chunk = ids[start:start + 8]
    padded = np.concatenate([chunk, np.zeros(8 - len(chunk), dtype=chunk.dtype)])
    assert (np.asarray(noise_for(padded))[: len(chunk)] == reference[chunk]).all()

# Example 42 at step 7, recomputed alone months later.
assert (np.asarray(noise_for(np.array([42])))[0] == reference[42]).all()
print("example-id keys: invariant to shuffling, padding and micro-batching")
