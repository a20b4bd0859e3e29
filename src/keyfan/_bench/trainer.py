"""The ensemble-trainer group: one training step of a K-member ensemble, contenders side by side.

``keyfan bench --group ensemble-trainer`` (or :func:`run`) times, at four sizes, one step of
K MLPs (ReLU, dropout 0.1 after each hidden layer, ``optax.adam(1e-3)``, softmax cross-entropy)
from the same state, by every arrangement of the ``Trainer``'s members and the peers:

* ``keyfan Trainer (default)`` -- the rule's choice (:data:`ARRANGEMENTS`, recorded as
  ``rule_choice``): layout-invariant blocks, one block per batch, elementwise products with all
  members in one vmap for small models, else each member its own single-member program, one
  member per step of a loop over the members;
* ``keyfan products='gemm'`` / ``products='elementwise'`` -- the form the rule did not choose
  (elementwise only where its products fit: at most 64 x the rule's bound);
* ``keyfan member_group=2`` -- the same bits, two members per step (each its own program);
* ``keyfan separate dispatches`` -- the same bits, the same single-member gradient program
  dispatched once per member from Python (then the joint mean and update);
* ``keyfan layout_invariant=False`` -- all members in one vmap, XLA's sums: no layout promise
  (its bits change with the members a device holds), shown for what the promise costs;
* ``hand-written jit(vmap(train_step))`` -- a linen step vmapped over members, one dropout key
  per member (``rngs={"dropout": key}``);
* ``Equinox filter_vmap`` -- an ``eqx.Module`` ensemble built by ``filter_vmap``, stepped by
  ``filter_vmap`` inside ``jax.jit``, per-example dropout keys split from the member key (the
  Equinox idiom); needs ``equinox`` (the ``dev`` extra), else the column is skipped;
* ``torch.func`` -- not run: torch is not a dependency of keyfan (the output says so in a note);
* ``Python loop`` -- K calls of one jitted single-member step.

Per contender: the median step time (the suite's runner: warm-up, round-robin samples, medians),
the first call (trace + compile + one step; for the default and the hand-written step the median
of :data:`FIRST_CALL_REPEATS` cold first calls, alternated) and XLA's temporary bytes of its compiled programs
(``compiled.memory_analysis().temp_size_in_bytes``; for two programs run one after the other,
the larger). These are measurements, not tests.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax

from keyfan._bench.runner import Case, Result, run_cases

__all__ = ["SIZES", "Size", "run", "size_cases"]


@dataclasses.dataclass(frozen=True)
class Size:
    """One ensemble: MLP ``inputs-hidden-hidden-outputs``, ``batch`` examples, ``members`` members."""

    name: str
    inputs: int
    hidden: int
    outputs: int
    batch: int
    members: int
    runs: int

    @property
    def label(self) -> str:
        return f"MLP {self.inputs}-{self.hidden}-{self.hidden}-{self.outputs}, batch {self.batch}, K={self.members}"


SIZES = (
    Size("small", 2, 16, 2, 16, 32, runs=21),
    Size("middle", 784, 256, 10, 128, 8, runs=11),
    Size("large", 784, 1024, 10, 256, 8, runs=5),
    Size("xlarge", 784, 2048, 10, 256, 8, runs=3),
)
"""Four sizes; fewer timed samples at the larger ones keep the group to minutes."""

ELEMENTWISE = "elementwise products, all members in one vmap"
GEMM = "gemm products, loop over members, 1 per iteration"
ARRANGEMENTS = {"elementwise": ELEMENTWISE, "gemm": GEMM}
"""The two arrangements the default ``Trainer`` chooses between (``products="auto"``): its
rule (``keyfan.ensemble._train.ELEMENTWISE_MAX_PRODUCTS``) reads one member's block program
and picks elementwise products with one member vmap for small ones, XLA's matrix products with
a loop over members, one single-member program at a time, for the others. Both keep every
member's bits in every arrangement (a plain member vmap, which XLA compiles by the size of the
whole member block, cannot). See docs/guides/performance.md."""

ONE_MEMBER_STATES = "separate dispatches: K one-member states"
"""A ``Trainer`` state per member (``ens[m:m + 1]``), each stepped by its own dispatch: the
same per-member program (member identity), with each member's arrays its own buffers."""

DROPOUT = 0.1
LEARNING_RATE = 1e-3


@dataclasses.dataclass
class Contender:
    """A step to time, and how to measure its compilation and memory."""

    name: str
    role: str
    make: Callable[[], Callable[[], Any]]
    """Builds fresh (uncompiled) state and returns the step; called once."""
    temp_bytes: Callable[[], int]
    arrangement: str = ""
    """How the members run (a ``Trainer`` arrangement, a vmap, a loop)."""


def _data(size: Size) -> tuple[jax.Array, jax.Array, jax.Array]:
    x = jax.random.normal(jax.random.key(1), (size.batch, size.inputs), jnp.float32)
    y = jnp.arange(size.batch, dtype=jnp.int32) % size.outputs
    return x, y, jnp.arange(size.batch, dtype=jnp.int32)


def _temp(*compiled: Any) -> int:
    return max(int(c.memory_analysis().temp_size_in_bytes) for c in compiled)


def keyfan_contenders(size: Size) -> list[Contender]:
    """The ``Trainer`` in its arrangements, and the linen peers (hand-written vmap, Python loop).

    Each ``Trainer`` contender steps its own chain of states (its steps consume the state they
    are given: ``donate=True``, the default), all from copies of the same initial state."""
    from keyfan.ensemble import Ensemble, Trainer
    from keyfan.ensemble._run import MLP
    from keyfan.keys import key

    x, y, ids = _data(size)
    module = MLP(hidden=size.hidden, outputs=size.outputs, dropout=DROPOUT)
    optimizer = optax.adam(LEARNING_RATE)
    ens = Ensemble.init(module, key(0), members=size.members, sample_input=x[:1])
    probe = Trainer(optimizer, model_kwargs={"train": True})
    choice = probe._products(probe.init(ens), x, y, ids)
    other = "gemm" if choice == "elementwise" else "elementwise"

    def trainer_contender(name: str, arrangement: str, **settings: Any) -> Contender:
        chain: dict[str, Any] = {}

        def make() -> Callable[[], Any]:
            # A new Trainer per make(): nothing its earlier steps cached (the products choice,
            # the checks of shapes) makes a repeated first call cheaper than a user's first.
            trainer = chain["trainer"] = Trainer(optimizer, model_kwargs={"train": True}, **settings)
            if arrangement == ONE_MEMBER_STATES:
                chain["states"] = [trainer.init(ens[m:m + 1]) for m in range(size.members)]

                def step() -> Any:
                    out = [trainer.step(s, x, y, ids) for s in chain["states"]]
                    chain["states"] = [s for s, _ in out]
                    return [loss for _, loss in out]

                return step
            chain["state"] = trainer.init(ens)

            def step_all() -> Any:
                chain["state"], losses = trainer.step(chain["state"], x, y, ids)
                return losses

            return step_all

        def temp() -> int:
            state = chain["states"][0] if arrangement == ONE_MEMBER_STATES else chain["state"]
            return _temp(chain["trainer"]._lower_step(state, x, y, ids).compile())

        return Contender(name, "keyfan", make, temp, arrangement)

    def step(params: Any, opt_state: Any, dropout_key: jax.Array) -> Any:
        def loss(p: Any) -> jax.Array:
            out = module.apply(p, x, train=True, rngs={"dropout": dropout_key})
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, y))

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    opt_state = jax.vmap(optimizer.init)(ens.params)
    member_keys = jax.random.split(jax.random.key(5), size.members)
    hand = jax.jit(jax.vmap(step))

    singles = [(ens.member(i), optimizer.init(ens.member(i)), member_keys[i]) for i in range(size.members)]
    single = jax.jit(step)

    return [
        trainer_contender("keyfan Trainer (default)", ARRANGEMENTS[choice]),
        trainer_contender("keyfan member_group=2", ARRANGEMENTS[choice].replace("all members in one vmap",
                                                                                 "2 members per vmap, looped")
                          .replace("1 per iteration", "2 per iteration (unrolled)"), member_group=2),
        trainer_contender("keyfan donate=False", ARRANGEMENTS[choice] + ", state copied", donate=False),
        trainer_contender("keyfan K one-member states", ONE_MEMBER_STATES),
        *([trainer_contender(f"keyfan products='{other}'", ARRANGEMENTS[other], products=other)]
          if other == "gemm" or _elementwise_fits(probe, ens, x, y, ids) else []),
        trainer_contender("keyfan layout_invariant=False", "one vmap over members (no layout promise)",
                          layout_invariant=False),
        Contender("hand-written jit(vmap(train_step))", "canonical",
                  lambda: (lambda: hand(ens.params, opt_state, member_keys)[2]),
                  lambda: _temp(hand.lower(ens.params, opt_state, member_keys).compile()), "one vmap over members"),
        Contender("Python loop over K jitted steps", "loop",
                  lambda: (lambda: [single(p, o, k)[2] for p, o, k in singles]),
                  lambda: _temp(single.lower(*singles[0]).compile()), "separate dispatches"),
    ]


def _elementwise_fits(trainer: Any, ens: Any, x: Any, y: Any, ids: Any) -> bool:
    """Whether the elementwise form's products fit in memory here (64 x the rule's bound)."""
    from keyfan.ensemble._exact import assess
    from keyfan.ensemble._train import ELEMENTWISE_MAX_PRODUCTS

    state = trainer.init(ens[:1])
    one = jax.tree.map(lambda a: a[0], (state.ensemble.params, state.ensemble.keys))
    block = trainer._block_program(ens.model, jnp.int32(0))
    tr, fr = ens.model.split_trainable(one[0])
    _, products = assess(lambda t, f, k: block(t, f, k, None, x, y, ids), tr, fr, one[1])
    return products <= 64 * ELEMENTWISE_MAX_PRODUCTS


def equinox_contender(size: Size) -> Contender | None:
    """An Equinox ensemble (``filter_vmap``-built members, ``filter_vmap``-ed step), or None
    without equinox."""
    if importlib.util.find_spec("equinox") is None:
        return None
    import equinox as eqx

    class EqxMLP(eqx.Module):
        layers: tuple
        dropout: eqx.nn.Dropout

        def __init__(self, k: jax.Array) -> None:
            k1, k2, k3 = jax.random.split(k, 3)
            self.layers = (eqx.nn.Linear(size.inputs, size.hidden, key=k1),
                           eqx.nn.Linear(size.hidden, size.hidden, key=k2),
                           eqx.nn.Linear(size.hidden, size.outputs, key=k3))
            self.dropout = eqx.nn.Dropout(DROPOUT)

        def __call__(self, xi: jax.Array, k: jax.Array) -> jax.Array:
            k1, k2 = jax.random.split(k)
            h = self.dropout(jax.nn.relu(self.layers[0](xi)), key=k1)
            h = self.dropout(jax.nn.relu(self.layers[1](h)), key=k2)
            return self.layers[2](h)

    x, y, _ = _data(size)
    optimizer = optax.adam(LEARNING_RATE)
    models = eqx.filter_vmap(EqxMLP)(jax.random.split(jax.random.key(0), size.members))
    params, static = eqx.partition(models, eqx.is_array)
    opt_state = jax.vmap(optimizer.init)(params)
    member_keys = jax.random.split(jax.random.key(5), size.members)

    def one(p: Any, o: Any, k: jax.Array) -> Any:
        def loss(p: Any) -> jax.Array:
            model = eqx.combine(p, static)
            out = jax.vmap(model)(x, jax.random.split(k, size.batch))
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, y))

        value, grads = jax.value_and_grad(loss)(p)
        updates, o = optimizer.update(grads, o, p)
        return optax.apply_updates(p, updates), o, value

    vmapped = eqx.filter_vmap(one)
    step = jax.jit(lambda p, o, k: vmapped(p, o, k))
    return Contender("Equinox filter_vmap", "equinox", lambda: (lambda: step(params, opt_state, member_keys)[2]),
                     lambda: _temp(step.lower(params, opt_state, member_keys).compile()), "one vmap over members")


def torch_note() -> str:
    """Why there is no torch.func column."""
    installed = importlib.util.find_spec("torch") is not None
    return ("torch.func column skipped: torch is " + ("installed, but " if installed else "not installed, and ")
            + "keyfan's bench compares JAX programs only (torch is no dependency of keyfan).")


class _CpuTimed:
    """``fn`` blocked until ready, recording the process CPU seconds of every call (all threads:
    the work done, which a loaded machine's time slicing does not stretch as it stretches wall
    time)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn, self.cpu_s = fn, []

    def __call__(self) -> Any:
        start = time.process_time()
        out = jax.block_until_ready(self.fn())
        self.cpu_s.append(time.process_time() - start)
        return out


def _warm_up() -> None:
    """One small step of a Trainer and of a hand-written vmap, so that no contender's first call
    pays for the process's first compilation (XLA's and JAX's one-time set-up)."""
    tiny = Size("warm-up", 2, 4, 2, 4, 2, runs=1)
    for contender in keyfan_contenders(tiny)[:1] + keyfan_contenders(tiny)[-2:-1]:
        jax.block_until_ready(contender.make()())
    jax.clear_caches()


FIRST_CALL_REPEATS = 3
"""Cold first calls of the default ``Trainer`` and of the hand-written step, alternated (the
median is reported): one first call per contender, in the order of the list, gave the later
contenders JAX's warm caches (``random_bits`` and the other jitted library functions every step
calls are traced and compiled once per process) and the load of whichever moment it ran at: the
hand-written step's first call measured 1.36 s after the default's 2.91 s in one process, 2.2-2.4 s
each time when caches were cleared before it."""


def _cold_first_call_s(contender: Contender) -> float:
    """Seconds of ``contender``'s first call (trace, compile, one step) with JAX's caches cleared
    and fresh state (a new ``Trainer`` for a keyfan contender)."""
    jax.clear_caches()
    fn = contender.make()
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def size_cases(size: Size) -> tuple[list[Case], dict[str, dict[str, Any]], dict[str, _CpuTimed]]:
    """The size's cases (group ``"ensemble trainer <size>"``), per case its first-call seconds,
    XLA temporary MB and RSS (measured here, each contender alone, before the timing), and its
    CPU-time recorder. The default ``Trainer``'s and the hand-written step's first calls are the
    medians of :data:`FIRST_CALL_REPEATS` cold first calls, alternated (``first_call_runs_s``)."""
    contenders = keyfan_contenders(size)
    extra = equinox_contender(size)
    if extra is not None:
        contenders.insert(-1, extra)
    paired = [c for c in contenders if c.name == "keyfan Trainer (default)" or c.role == "canonical"]
    cold: dict[str, list[float]] = {c.name: [] for c in paired}
    for _ in range(FIRST_CALL_REPEATS):
        for c in paired:
            cold[c.name].append(_cold_first_call_s(c))
    jax.clear_caches()
    group = f"ensemble trainer {size.name}"
    cases, extras, timers = [], {}, {}
    for c in contenders:
        fn = c.make()
        start = time.perf_counter()
        jax.block_until_ready(fn())
        first = time.perf_counter() - start
        extras[c.name] = {"first_call_s": statistics.median(cold[c.name]) if c.name in cold else first,
                          "xla_temp_mb": c.temp_bytes() / 2**20, "rss_mb": _rss_mb(),
                          "arrangement": c.arrangement, "chosen": c.name == "keyfan Trainer (default)"}
        if c.name in cold:
            extras[c.name]["first_call_runs_s"] = cold[c.name]
        timers[c.name] = _CpuTimed(fn)
        cases.append(Case(f"{size.name}: {c.name}", group, timers[c.name], 0, c.role))
    return cases, extras, timers


def run_size(size: Size, *, min_sample_ms: float = 20.0,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One size's entry of the document: every contender's median wall and CPU ms per step,
    first call, XLA temp, RSS, and ratios to the hand-written vmap and to Equinox."""
    _warm_up()
    cases, extras, timers = size_cases(size)
    results: list[Result] = run_cases(cases, runs=size.runs, min_sample_ms=min_sample_ms, progress=progress)
    by_role = {r.role: r for r in results}
    rows = []
    for r in results:
        name = r.name.split(": ", 1)[1]
        timed = timers[name].cpu_s[-r.runs * r.calls:]
        cpu = statistics.median(timed) * 1e3
        rows.append({"contender": name, "median_ms": r.median_ms, "p10_ms": r.p10_ms, "p90_ms": r.p90_ms,
                     "cpu_median_ms": cpu, "runs": r.runs, "calls_per_run": r.calls, **extras[name]})
    by_name = {row["contender"]: row for row in rows}
    for row in rows:
        for peer in ("canonical", "equinox", "loop"):
            base = by_role.get(peer)
            label = {"canonical": "hand"}.get(peer, peer)
            theirs = by_name[base.name.split(": ", 1)[1]] if base else None
            row[f"time_vs_{label}"] = row["median_ms"] / theirs["median_ms"] if theirs else None
            row[f"cpu_vs_{label}"] = row["cpu_median_ms"] / theirs["cpu_median_ms"] if theirs else None
            row[f"first_call_vs_{label}"] = row["first_call_s"] / theirs["first_call_s"] if theirs else None
            row[f"temp_vs_{label}"] = (row["xla_temp_mb"] / theirs["xla_temp_mb"]
                                       if theirs and theirs["xla_temp_mb"] else None)
    chosen = next(row for row in rows if row["chosen"])
    return {"size": size.name, "label": size.label, "runs": size.runs, "rule_choice": chosen["arrangement"],
            "peak_rss_mb": _peak_rss_mb(), "contenders": rows}


def _rss_mb() -> float | None:
    """The process's resident memory now (``VmRSS``), in MB, or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(sizes: Any = SIZES, *, out: Path | None = Path("benchmarks/results"), min_sample_ms: float = 20.0,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Runs the group, each size in a process of its own (one process for all four sizes was
    killed by the kernel's OOM killer on a shared machine, and a fresh process gives every size
    the same start); writes ``ensemble-trainer.json`` to ``out`` (if given) and returns the
    document: per size, per contender, median wall and CPU ms, first-call s, XLA temp MB, RSS and
    the ratios to the hand-written vmap, to Equinox and to the Python loop."""
    from keyfan._bench.report import machine

    doc: dict[str, Any] = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                           "machine": machine(), "notes": [torch_note()], "sizes": []}
    for size in sizes:
        command = [sys.executable, "-m", "keyfan._bench.trainer", "--size", json.dumps(dataclasses.asdict(size)),
                   "--min-sample-ms", str(min_sample_ms)]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=None if progress is None else subprocess.DEVNULL,
                              text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the ensemble-trainer bench of size {size.name!r} failed (exit {done.returncode}); "
                               f"run {' '.join(command)} to see why.")
        doc["sizes"].append(json.loads(done.stdout.strip().splitlines()[-1]))
        if progress is not None:
            progress(f"ensemble trainer {size.name}: done")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "ensemble-trainer.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc


TABLE_COLUMNS = ("size", "contender", "arrangement (* rule)", "median ms", "CPU ms", "vs hand", "vs loop",
                 "vs equinox", "first call s", "XLA temp MB")
"""The columns of :func:`table`."""


def table(doc: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rows of :data:`TABLE_COLUMNS` (wall and CPU ms per step; ratios of wall time); the rule's
    choice is marked ``*``."""
    rows = []
    for entry in doc["sizes"]:
        for c in entry["contenders"]:
            ratio = lambda v: "" if v is None else f"{v:.2f}x"  # noqa: E731
            arrangement = c.get("arrangement", "") + (" *" if c.get("chosen") else "")
            rows.append((entry["size"], c["contender"], arrangement, f"{c['median_ms']:.2f}",
                         f"{c['cpu_median_ms']:.2f}", ratio(c["time_vs_hand"]), ratio(c["time_vs_loop"]),
                         ratio(c["time_vs_equinox"]), f"{c['first_call_s']:.2f}", f"{c['xla_temp_mb']:.1f}"))
    return rows


def main(argv: list[str] | None = None) -> None:
    """``python -m keyfan._bench.trainer [--size NAME [--min-sample-ms MS]]``: with ``--size``,
    time that size in this process and print its entry as one JSON line (what :func:`run` calls
    per size); without, run every size and print the table."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m keyfan._bench.trainer")
    parser.add_argument("--size", help="a size's name (" + ", ".join(s.name for s in SIZES) + ") or its fields as JSON")
    parser.add_argument("--min-sample-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.size is not None:
        named = {s.name: s for s in SIZES}
        size = named[args.size] if args.size in named else Size(**json.loads(args.size))
        entry = run_size(size, min_sample_ms=args.min_sample_ms,
                         progress=lambda name: print(f"  {name}", file=sys.stderr))
        print(json.dumps(entry))
        return
    document = run()
    for line in table(document):
        print(" | ".join(line))
    for note in document["notes"]:
        print(note)


if __name__ == "__main__":
    main()
