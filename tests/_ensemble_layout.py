"""Run in a fresh process (XLA_FLAGS set first): train and predict an ensemble on a given device
layout and print a digest of every result, for the 1-vs-8-device equality test."""

from __future__ import annotations

import hashlib
import json
import os
import sys


def run(devices: int, member_axis: int, data_axis: int) -> dict[str, str]:
    """Digests of params, optimizer state, losses and predictions after a few sharded steps."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import keyfan as kf
    from keyfan.ensemble import Ensemble, Trainer, make_mesh, shard_batch, shard_members
    from keyfan.ensemble._data import make_moons

    assert len(jax.devices()) == devices, jax.devices()

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            x = nn.relu(nn.Dense(32)(x))
            x = nn.Dropout(0.2, deterministic=not train)(x)
            return nn.Dense(2)(x)

    data = make_moons(kf.key(1), 64)
    ens = Ensemble.init(MLP(), kf.key(0), members=8, sample_input=data.x[:2])
    mesh = make_mesh(member_axis, data_axis) if devices > 1 or os.environ.get("FORCE_MESH") else None
    optimizer = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)
    trainer = Trainer(optimizer, model_kwargs={"train": True}, chunks=int(os.environ.get("CHUNKS", 2)), mesh=mesh)
    state = trainer.init(ens, bootstrap=64, learning_rates=np.linspace(1e-3, 2e-2, 8))
    if mesh is not None:
        state = shard_members(state, mesh)
    losses = []
    for step in range(6):
        ids = (np.arange(32) + 32 * step) % 64
        x, y = data.x[ids], data.y[ids]
        if mesh is not None:
            x, y, ids = shard_batch((x, y, jnp.asarray(ids)), mesh)
        state, loss = trainer.step(state, x, y, ids)
        losses.append(loss)
    x = data.x if mesh is None else shard_batch(data.x, mesh)
    pred = state.ensemble.predict(x, task="classification", mesh=mesh)

    def digest(tree) -> str:
        leaves = [np.asarray(jax.random.key_data(a) if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else a)
                  for a in jax.tree.leaves(tree)]
        return hashlib.sha256(b"".join(a.tobytes() for a in leaves)).hexdigest()

    return {"params": digest(state.ensemble.params), "opt_state": digest(state.opt_state),
            "keys": digest(state.ensemble.keys), "losses": digest(losses), "predict": digest(pred)}


if __name__ == "__main__":
    devices, member_axis, data_axis = map(int, sys.argv[1:4])
    assert os.environ.get("XLA_FLAGS", "").endswith(str(devices)) or devices == 1
    print(json.dumps(run(devices, member_axis, data_axis)))
