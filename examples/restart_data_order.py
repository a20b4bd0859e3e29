"""Reproducible data order and augmentation across a restart: each epoch's order comes from
kf.step(order_key, epoch), and each example's noise from kf.example_keys(noise_key, ids, step=t),
so a run stopped after any step and resumed from its checkpoint (parameters and a step counter,
no RNG state) ends with the same bits as a run that never stopped.

Run: .venv/bin/python examples/restart_data_order.py
"""

import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

import keyfan as kf

N, BATCH, EPOCHS = 96, 16, 3
STEPS_PER_EPOCH = N // BATCH
data_key = kf.named(kf.key(7), "data")
x_all = np.asarray(kf.normal(data_key, batch=(N,), shape=(3,)))
y_all = x_all @ np.array([1.5, -2.0, 0.5], np.float32) + 0.3
ids_all = np.arange(N)  # stable example ids

Params = dict[str, jax.Array]
root = kf.key(42)
order_key, noise_key = kf.named(root, "order"), kf.named(root, "noise")


def batch_ids(t: int) -> np.ndarray:
    """The example ids of global step t: epoch t // S's permutation, slice t % S."""
    epoch, i = divmod(t, STEPS_PER_EPOCH)
    perm = np.asarray(jax.random.permutation(kf.step(order_key, epoch), N))
    batch: np.ndarray = ids_all[perm[i * BATCH:(i + 1) * BATCH]]
    return batch


@jax.jit
def sgd_step(params: Params, x: jax.Array, y: jax.Array, ids: np.ndarray, t: int) -> Params:
    noisy = x + 0.1 * jax.vmap(lambda k: jax.random.normal(k, (3,)))(kf.example_keys(noise_key, ids, step=t))

    def loss(params: Params) -> jax.Array:
        return jnp.mean(jnp.square(noisy @ params["w"] + params["b"] - y))

    grads = jax.grad(loss)(params)
    updated: Params = jax.tree.map(lambda p, g: p - 0.05 * g, params, grads)
    return updated


def train(params: Params, start: int, stop: int) -> Params:
    for t in range(start, stop):
        ids = batch_ids(t)
        params = sgd_step(params, x_all[ids], y_all[ids], ids, t)
    return params


init = {"w": jnp.zeros(3), "b": jnp.zeros(())}
total = EPOCHS * STEPS_PER_EPOCH

# The run that never stopped.
straight = train(init, 0, total)

# The run that stops after step 10 (mid-epoch), saves, and resumes in a fresh "process".
with tempfile.TemporaryDirectory() as tmp:
    checkpoint = pathlib.Path(tmp) / "ckpt.npz"
    params = train(init, 0, 10)
    np.savez(checkpoint, step=np.asarray(10), w=np.asarray(params["w"]), b=np.asarray(params["b"]))
    del params
    saved = np.load(checkpoint)
    resumed = train({"w": jnp.asarray(saved["w"]), "b": jnp.asarray(saved["b"])}, int(saved["step"]), total)

for name in ("w", "b"):
    assert np.asarray(resumed[name]).tobytes() == np.asarray(straight[name]).tobytes(), name

# The data order of each epoch is a permutation (every example once), different per epoch.
epochs = [np.concatenate([batch_ids(e * STEPS_PER_EPOCH + i) for i in range(STEPS_PER_EPOCH)]) for e in range(EPOCHS)]
assert all(sorted(order) == list(ids_all) for order in epochs)
assert not (epochs[0] == epochs[1]).all()

# Any example's noise at any step can be recomputed alone, e.g. for debugging one bad example.
t, example = 13, int(batch_ids(13)[5])
alone = jax.random.normal(kf.example_keys(noise_key, np.array([example]), step=t)[0], (3,))
in_batch = jax.vmap(lambda k: jax.random.normal(k, (3,)))(kf.example_keys(noise_key, batch_ids(13), step=t))[5]
assert (alone == in_batch).all()
print(f"{total} steps straight == stopped at step 10 and resumed, bit for bit: w = {np.asarray(straight['w'])}")
