"""Benchmark cases for ensembles, for the ``keyfan bench`` suite (and :func:`measure_targets`).

The performance targets, measured (not asserted by tests):

* ``ensemble.init.350xDense``: ``Ensemble.init`` of 350 ``nn.Dense(128)`` members on 128-d
  inputs (one vmapped, jitted init), after compilation: under 0.5 s.
* ``ensemble.train_step.vmap.K32`` vs ``ensemble.train_step.loop.K32``: one vmapped training step
  of 32 small MLP members (2-16-16-2, dropout 0.1, Adam, batch 16, per-example dropout keys)
  against a Python loop calling each member's own jitted step (the same per-example loss, one
  member at a time): the vmapped step at least 5x faster. ``vmap_xla_sums`` is the same step
  with ``Trainer(layout_invariant=False)``. (The loop pays one dispatch per member, about
  0.1 ms here; for larger members the work itself dominates and the ratio shrinks: the
  ensemble-trainer group, :mod:`keyfan._bench.trainer`, compares larger sizes and more peers.)

Moved here from ``keyfan.ensemble.bench``: the library (``keyfan.ensemble``) does not import
its benchmarks, the bench suite imports the library.

Each case's ``run()`` returns arrays (the suite blocks on them); call ``setup()`` results once.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from keyfan.ensemble._data import make_moons
from keyfan.ensemble._ensemble import Ensemble
from keyfan.ensemble._losses import cross_entropy
from keyfan.ensemble._per_example import apply_one, member_dropout_keys, stream_keys
from keyfan.ensemble._run import MLP
from keyfan.ensemble._train import Trainer
from keyfan.keys import at, key

__all__ = ["BenchCase", "bench_cases", "measure", "measure_targets", "suite_cases"]

INIT_MEMBERS = 350
INIT_FEATURES = 128
TRAIN_MEMBERS = 32
HIDDEN = 16
BATCH = 16


class BenchCase(NamedTuple):
    """One timed case: ``run()`` does the work once and returns its arrays."""

    name: str
    group: str
    run: Callable[[], Any]
    note: str


def _init_case(members: int) -> Callable[[], Any]:
    x = jnp.ones((1, INIT_FEATURES), jnp.float32)
    model, k = nn.Dense(INIT_FEATURES), key(0)
    return lambda: Ensemble.init(model, k, members=members, sample_input=x).params


def _train_cases(members: int, *, hidden: int = HIDDEN, batch: int = BATCH,
                 layout_invariant: bool = True) -> tuple[Callable[[], Any], Callable[[], Any]]:
    data = make_moons(key(1), batch)
    x, y, ids = data.x, data.y, data.ids
    ens = Ensemble.init(MLP(hidden=hidden, dropout=0.1), key(0), members=members, sample_input=x[:1])
    optimizer = optax.adam(1e-3)
    trainer = Trainer(optimizer, model_kwargs={"train": True}, layout_invariant=layout_invariant)
    chain = {"state": trainer.init(ens)}  # each step consumes its state (donate=True): step the chain
    model = ens.model

    @jax.jit
    def member_step(params: Any, opt_state: Any, member_key: jax.Array, step: jax.Array, ids: jax.Array) -> Any:
        dkeys = stream_keys(member_dropout_keys(member_key, ids, step))

        def loss(p: Any) -> jax.Array:
            def one(xi: Any, yi: Any, ki: jax.Array) -> jax.Array:
                return cross_entropy(apply_one(model, p, xi, ki, train=True), yi)
            return jnp.mean(jax.vmap(one)(x, y, dkeys))

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    singles = [(ens.member(i), at(key(0), i)) for i in range(members)]
    single_states = [optimizer.init(p) for p, _ in singles]
    step0 = jnp.zeros((), jnp.int32)

    def vmapped() -> Any:
        chain["state"], losses = trainer.step(chain["state"], x, y, ids)
        return losses

    def loop() -> Any:
        return [member_step(p, o, k, step0, ids)[2] for (p, k), o in zip(singles, single_states, strict=True)]

    return vmapped, loop


def bench_cases(*, quick: bool = False) -> list[BenchCase]:
    """The ensemble cases (``quick``: 35 init members and K=8, for a fast smoke run)."""
    init_members = INIT_MEMBERS // 10 if quick else INIT_MEMBERS
    k = 8 if quick else TRAIN_MEMBERS
    vmapped, loop = _train_cases(k)
    xla_sums, _ = _train_cases(k, layout_invariant=False)
    mlp = f"{k} MLPs 2-{HIDDEN}-{HIDDEN}-2 with dropout, batch {BATCH}, Adam, per-example dropout keys"
    return [
        BenchCase(f"ensemble.init.{init_members}xDense", "ensemble", _init_case(init_members),
                  f"Ensemble.init, {init_members} x nn.Dense({INIT_FEATURES}), one vmapped jitted init"),
        BenchCase(f"ensemble.train_step.vmap.K{k}", "ensemble", vmapped, f"Trainer.step: {mlp}"),
        BenchCase(f"ensemble.train_step.vmap_xla_sums.K{k}", "ensemble", xla_sums,
                  f"Trainer(layout_invariant=False).step: {mlp}"),
        BenchCase(f"ensemble.train_step.loop.K{k}", "ensemble", loop,
                  f"Python loop over the {k} members' own jitted steps (same per-example loss)"),
    ]


def measure(case: BenchCase, *, repeats: int = 20, warmup: int = 2) -> float:
    """Median seconds of ``case.run()`` (blocked until ready) over ``repeats`` runs after warm-up."""
    for _ in range(warmup):
        jax.block_until_ready(case.run())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(case.run())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_targets(*, repeats: int = 20, quick: bool = False) -> dict[str, float]:
    """Every case's median seconds, plus the loop / vmap speedups of both vmapped steps."""
    cases = bench_cases(quick=quick)
    medians = {case.name: measure(case, repeats=repeats) for case in cases}
    loop = medians[cases[3].name]
    medians["train_step_speedup"] = float(np.float64(loop) / medians[cases[1].name])
    medians["train_step_speedup_xla_sums"] = float(np.float64(loop) / medians[cases[2].name])
    return medians


def suite_cases(*, quick: bool = False) -> list[Any]:
    """The same cases as ``keyfan._bench`` ``Case`` objects, for ``keyfan bench``'s suite: group
    ``"ensemble init"``, and group ``"ensemble train step"`` whose ``"canonical"`` baseline is the
    Python loop, so the suite's "vs canonical" column is the vmapped step's speedup."""
    from keyfan._bench.runner import Case

    init, vmapped, xla_sums, loop = bench_cases(quick=quick)
    step_group = f"ensemble train step K={TRAIN_MEMBERS // 4 if quick else TRAIN_MEMBERS}"
    return [
        Case(init.name, "ensemble init", init.run, 0, "keyfan"),
        Case(loop.name, step_group, loop.run, 0, "canonical"),
        Case(vmapped.name, step_group, vmapped.run, 0, "keyfan"),
        Case(xla_sums.name, step_group, xla_sums.run, 0, "keyfan"),
    ]
