"""Run in a fresh process (XLA_FLAGS set by the caller, before jax is imported): train and
predict an ensemble on one device layout and print a digest of every result as JSON, for the
layout equality test (tests/test_ensemble_layout.py).

    python -m tests._ensemble_layout DEVICES CHUNKS

With one device it runs the chunk settings ``CHUNK_SETTINGS`` (the same blocks of 8 examples cut
into 1, 2 or 4 chunks); with 8 devices the layouts ``LAYOUTS`` (member x data devices, over 2, 4
and 8 of the devices) one after the other.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys


def run(devices: int, member_axis: int, data_axis: int, chunks: int, *, hidden: int = 32,
        **trainer_kwargs) -> dict[str, str]:
    """Digests of params, optimizer state, keys, losses and predictions after six steps, and the
    form of the step's products the trainer ran (``"elementwise"`` or ``"gemm"``)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import keyfan as kf
    from keyfan.ensemble import Ensemble, Trainer, make_mesh, shard_batch, shard_members
    from keyfan.ensemble._data import make_moons

    if len(jax.devices()) != devices or member_axis * data_axis > devices:
        raise SystemExit(f"expected {devices} devices, got {jax.devices()}")

    data = make_moons(kf.key(1), 64)
    ens = Ensemble.init(mlp(hidden), kf.key(0), members=8, sample_input=data.x[:2])
    mesh = make_mesh(member_axis, data_axis) if member_axis * data_axis > 1 else None
    optimizer = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)
    trainer = Trainer(optimizer, model_kwargs={"train": True}, chunks=chunks, mesh=mesh, **trainer_kwargs)
    state = trainer.init(ens, bootstrap=64, learning_rates=np.linspace(1e-3, 2e-2, 8))
    products = trainer._products(state, data.x[:32], data.y[:32], jnp.arange(32))
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
    prediction = state.ensemble.predict(x, task="classification", mesh=mesh)
    if mesh is not None:
        shard_count = len(state.ensemble.params["params"]["Dense_0"]["kernel"].sharding.device_set)
        assert shard_count == member_axis * data_axis, shard_count

    def digest(tree) -> str:
        leaves = [np.asarray(jax.random.key_data(a) if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else a)
                  for a in jax.tree.leaves(tree)]
        return hashlib.sha256(b"".join(a.tobytes() for a in leaves)).hexdigest()

    return {"params": digest(state.ensemble.params), "opt_state": digest(state.opt_state),
            "keys": digest(state.ensemble.keys), "step": digest(state.step), "losses": digest(losses),
            "predict": digest(prediction), "products": products}


@functools.cache
def mlp(hidden: int):
    """The member model: Dense(hidden), relu, dropout 0.2, Dense(2). One instance per width, so
    that the runs of a process share the programs that do not depend on the arrangement (the
    ensemble's init, and prediction on the same devices and blocks) instead of compiling them again."""
    import flax.linen as nn

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            x = nn.relu(nn.Dense(hidden)(x))
            x = nn.Dropout(0.2, deterministic=not train)(x)
            return nn.Dense(2)(x)

    return MLP()


def refused_with_unequal_member_blocks() -> str:
    """The error for a member axis that would give devices different numbers of members."""
    import flax.linen as nn
    import optax

    import keyfan as kf
    from keyfan.ensemble import Ensemble, Trainer, make_mesh

    ens = Ensemble.init(nn.Dense(2), kf.key(0), members=8, sample_input=kf.normal(kf.key(1), batch=(2,), shape=(3,)))
    try:
        Trainer(optax.sgd(0.1), mesh=make_mesh(3, 1)).init(ens)
    except ValueError as err:
        return str(err)
    return "not refused"


LAYOUTS = ((2, 1), (1, 2), (4, 1), (2, 2), (1, 4), (8, 1), (4, 2), (2, 4))
"""Member x data devices: 2, 4 and 8 devices, each holding 1, 2, 4 or 8 of the 8 members and 1,
2 or 4 of the 4 chunks."""
CHUNK_SETTINGS = (1, 2)
"""Chunk counts run with ``block_size=8`` on one device beside the default (one block per chunk
of a batch of 32 in 4 chunks: blocks of 8 as well)."""

if __name__ == "__main__":
    devices, chunks = map(int, sys.argv[1:3])
    if devices == 1:
        result = {"1x1": run(1, 1, 1, chunks)}
        result.update({f"1x1 chunks={c} block_size=8": run(1, 1, 1, c, block_size=8) for c in CHUNK_SETTINGS})
    else:
        result = {f"{m}x{d}": run(devices, m, d, chunks) for m, d in LAYOUTS}
        result["unequal_member_blocks"] = refused_with_unequal_member_blocks()
    print(json.dumps(result))
