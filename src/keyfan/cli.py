"""The ``keyfan`` command line: a thin typer layer over library functions, no logic of its own."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table


class _Command(typer.core.TyperCommand):
    """A command whose --help shows no raw type tags (typer prints ``<bool>`` for every flag and ``<str>``
    for arguments); options name their values with a metavar instead."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, typer.core.TyperArgument) and param.metavar is not None:
                param.display_type_rich = lambda ctx: None

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class _Group(typer.core.TyperGroup, _Command):
    """The root ``keyfan`` group, with the same --help line as its commands."""


__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, cls=_Group,
                  help="keyfan: per-example randomness in JAX that is correct, reproducible and fast.")
DEFAULT_RUN_DIR = Path("keyfan-out/ensemble")
DEFAULT_BENCH_DIR = Path("keyfan-out/bench")
FLAG = ""  # metavar of a flag: no type tag in --help


def _console() -> Console:
    """A console sized when a command runs (``COLUMNS``, the terminal), not when keyfan is imported;
    120 columns when the output is a file or a pipe (CI logs), where rich would assume 80."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=120 if piped else None)


def _print_version(value: bool) -> None:
    if value:
        from keyfan._version import __version__

        typer.echo(f"keyfan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, metavar=FLAG,
                                          help="Print keyfan's version and exit.")] = False,
) -> None:
    """keyfan: per-example randomness in JAX that is correct, reproducible and fast."""


@app.command(cls=_Command)
def tour() -> None:
    """Run every reference recipe, check its rows, and show the broadcast-key bug beside its fix."""
    console = _console()
    from keyfan._pitfalls import distinct_rows
    from keyfan._tour import broadcast_demo, run_tour, sanitizer_demo

    table = Table(title="keyfan tour: the reference recipes (seed 0)")
    table.add_column("recipe", no_wrap=True)
    for column in ("output shape", "rows pairwise distinct", "reproduced bit for bit", "result", "pattern"):
        table.add_column(column)
    rows = run_tour()
    failed = [row.recipe for row in rows if not row.ok]
    for row in rows:
        table.add_row(row.recipe, str(row.shape),
                      f"[green]{row.distinct}[/]" if row.holds else f"[red]{row.distinct}[/]",
                      "[green]yes[/]" if row.reproducible else "[red]NO[/]",
                      "[red]FAIL[/]" if row.recipe in failed else "[green]pass[/]", row.note)
    console.print(table)

    demo = broadcast_demo()
    pitfall = Table(title="The pitfall: a key broadcast with in_axes=(0, None) (noise added to zeros)")
    pitfall.add_column("example")
    pitfall.add_column("bug: vmap(add_noise, in_axes=(0, None))(xs, key)", style="red")
    pitfall.add_column("fix: vmap(add_noise)(xs, split(key, B))", style="green")
    for i, (bug, fix) in enumerate(zip(demo.bug.tolist(), demo.fix.tolist(), strict=True)):
        pitfall.add_row(str(i), " ".join(f"{v:+.4f}" for v in bug), " ".join(f"{v:+.4f}" for v in fix))
    console.print(pitfall)
    words = {True: "yes", False: "no"}
    console.print(
        f"bug rows pairwise distinct: [red]{words[distinct_rows(demo.bug)]}[/]   "
        f"fix rows pairwise distinct: [green]{words[distinct_rows(demo.fix)]}[/]"
    )
    console.print("Found without changing the code: kf.sanitize() (or pytest --keyfan-sanitize) on the bug raises")
    console.print(f"  [red]kf.SharedRandomnessError[/]: {sanitizer_demo()}", soft_wrap=True)
    if failed:
        console.print(f"[red]FAIL[/]: {len(failed)} of {len(rows)} recipes failed their checks: {', '.join(failed)}")
        raise typer.Exit(code=1)
    console.print(f"[green]pass[/]: all {len(rows)} recipes passed their checks")


@app.command(cls=_Command)
def bench(
    quick: bool = typer.Option(False, "--quick", metavar=FLAG,
                               help="Leave out the largest shape; samplers at 1e5 (about a minute of CPU time). Writes "
                                    "bench-quick.json and bench-quick.png."),
    runs: int = typer.Option(21, min=3, metavar="N", help="Timed samples per case (at least 3); the median is "
                                                          "reported."),
    sample_ms: float | None = typer.Option(None, min=0.0, metavar="MS", show_default=False,
                                           help="Each sample averages enough calls to last this long (0: one call "
                                                "per sample). (default: 20, or 10 with --quick)"),
    out: Path = typer.Option(DEFAULT_BENCH_DIR, metavar="DIR",  # noqa: B008
                             help="Directory for bench.json and bench.png."),
    group: str = typer.Option("all", metavar="GROUP",
                              help="'all' (the suite), 'ensemble-trainer' (one ensemble training step against "
                                   "hand-written JAX and Equinox at four sizes; several minutes) or 'portable' "
                                   "(each float sampler with portable=True beside its default; portable.json)."),
) -> None:
    """Time keyfan against the canonical patterns and NumPy; write JSON and a PNG chart."""
    console = _console()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if group not in ("all", "ensemble-trainer", "portable"):
        raise typer.BadParameter(f"group must be 'all', 'ensemble-trainer' or 'portable', got {group!r}.",
                                 param_hint="--group")
    if group == "ensemble-trainer":
        from keyfan._bench import trainer

        doc = trainer.run(out=out, progress=lambda name: console.print(f"  {name}", end="\r"))
        table = Table(title="ensemble trainer: one training step (median ms), first call (s), XLA temp (MB)")
        for n, column in enumerate(trainer.TABLE_COLUMNS):
            table.add_column(column, justify="left" if n < 3 else "right")
        for row in trainer.table(doc):
            table.add_row(*row)
        console.print(table)
        for note in doc["notes"]:
            console.print(note)
        console.print(f"wrote {out / 'ensemble-trainer.json'}")
        return

    from keyfan._bench import report, run_cases
    from keyfan._bench.suite import default_cases

    if sample_ms is None:
        sample_ms = 10.0 if quick else 20.0
    if group == "portable":
        import jax

        import keyfan as kf
        from keyfan._bench.portable import portable_cases

        cases = portable_cases(kf.key(0), jax.random.PRNGKey(0), 10**5 if quick else 10**6)
    else:
        cases = default_cases(quick=quick)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("benchmarking", total=len(cases) * runs)
        results = run_cases(cases, runs=runs, min_sample_ms=sample_ms,
                            progress=lambda name: bar.update(task, advance=1, description=name[:48]))

    ratio = report.ratios(results)
    fmt = lambda v, spec, unit="": "" if v is None else format(v, spec) + unit  # noqa: E731
    rows = [(r.name, f"{r.calls}", f"{r.median_ms:.3f}", f"{r.p10_ms:.3f}-{r.p90_ms:.3f}", fmt(r.ns_per_output, ".2f"),
             fmt(ratio[r.name]["vs_canonical"], ".2f", "x"), fmt(ratio[r.name]["vs_numpy"], ".2f", "x"))
            for r in results]
    table = Table(title=f"keyfan bench: per call, median of {runs} samples of ~{sample_ms:g} ms after warm-up")
    headers = ("case", "calls/sample", "median ms", "p10-p90 ms", "ns/output", "vs canonical", "vs numpy")
    for i, column in enumerate(headers):
        if column == "case":  # the names wrap in a narrow terminal; the figures never do
            table.add_column(column, overflow="fold")
        else:
            width = max([len(column), *(len(row[i]) for row in rows)])
            table.add_column(column, justify="right", no_wrap=True, min_width=width)
    for row in rows:
        table.add_row(*row)
    console.print(table)

    if quick:  # the targets are set on the full shapes, which --quick leaves out
        console.print("targets: not evaluated by --quick (they are set on the full run's shapes: keyfan bench)")
    else:
        goals = Table(title="targets (this run)")
        goals.add_column("target", overflow="fold")
        for column in ("value", "goal", "met"):
            goals.add_column(column, justify="right", no_wrap=True, min_width=6)
        for t in report.targets(results):
            met = {True: "[green]yes[/]", False: "[red]no[/]", None: "n/a"}[t["met"]]
            goals.add_row(t["target"], fmt(t["value"], ".2f"), f"{t['goal']}", met)
        console.print(goals)

    name = ("portable" if group == "portable" else "bench") + ("-quick" if quick else "")
    report.write_json(out / f"{name}.json", results, quick=quick)
    if group == "portable":
        console.print(f"wrote {out / f'{name}.json'}")
        return
    report.write_png(out / f"{name}.png", results)
    console.print(f"wrote {out / f'{name}.json'} and {out / f'{name}.png'}")


@app.command(cls=_Command)
def ensemble(
    members: Annotated[int, typer.Option("--members", "-k", metavar="K", help="The number of members.")] = 8,
    epochs: Annotated[int | None, typer.Option(metavar="N", show_default=False,
                                               help="Training epochs. (default: 100 for moons, 200 for "
                                                    "regression)")] = None,
    seed: Annotated[int, typer.Option(metavar="SEED",
                                      help="The seed every random choice of the run derives from.")] = 0,
    dataset: Annotated[str, typer.Option(metavar="NAME", help="'moons' (classification) or 'regression' (noisy "
                                                              "1-D curve).")] = "moons",
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", metavar="DIR",
                                          help="Where the PNG and JSON go.")] = DEFAULT_RUN_DIR,
    bootstrap: Annotated[bool, typer.Option("--bootstrap/--no-bootstrap", metavar=FLAG,
                                            help="Train each member on its own bootstrap resample.")] = False,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", metavar=FLAG,
                                         help="Continue the run whose checkpoints are in --out-dir (same settings) "
                                              "from its newest complete checkpoint; --no-resume starts over.")] = True,
) -> None:
    """Train a deep ensemble of small MLPs with dropout on a built-in dataset; report member and ensemble metrics.

    A checkpoint is saved after every epoch (the newest two are kept) in OUT_DIR/checkpoints; run the same
    command again after an interruption and it resumes from the newest complete one, with the same result."""
    console = _console()
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from keyfan.ensemble import report_table
    from keyfan.ensemble._run import RunConfig, checkpoint_dir, run_ensemble, steps_per_epoch

    try:
        config = RunConfig(dataset=dataset, members=members, epochs=epochs, seed=seed, out_dir=str(out_dir),
                           bootstrap=bootstrap)
    except (TypeError, ValueError) as err:
        raise typer.BadParameter(str(err)) from err
    _check_out_dir("--out-dir", out_dir)
    start = time.perf_counter()
    columns = (TextColumn("[bold]training[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
               TimeElapsedColumn(), TextColumn("{task.fields[loss]}"))
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("train", total=config.epochs, loss="")

        def on_epoch(epoch: int, losses: Any) -> None:
            progress.update(task, completed=epoch + 1, loss=f"mean member loss {float(losses.mean()):.4f}")

        try:
            result = run_ensemble(config, on_epoch=on_epoch, resume=resume)
        except ValueError as err:
            raise _fail(f"keyfan ensemble: {err}") from None
        except OSError as err:
            from keyfan.ensemble._disk_errors import silence_echoes_for_the_process

            silence_echoes_for_the_process()  # the line below is the run's last word on the error
            Console(stderr=True, soft_wrap=True).print(f"keyfan ensemble: {err}", markup=False, style="red")
            raise typer.Exit(code=1) from None
    if result.resumed_from is not None:
        epoch = result.resumed_from // steps_per_epoch(config)
        console.print(f"resumed from step {result.resumed_from} (after epoch {epoch} of {config.epochs}) of the run "
                      f"in {checkpoint_dir(config)}")
    labels, rows = report_table(result.metrics)
    table = Table(title=f"{config.members}-member deep ensemble on {config.dataset} (seed {config.seed}, "
                        f"{config.n_test} test points)")
    table.add_column("model", no_wrap=True)
    for label in labels:
        table.add_column(label, justify="right")
    for name, values in rows:
        style = "bold green" if name == "ensemble" else ("bold" if name == "member mean" else None)
        table.add_row(name, *(f"{v:.4f}" for v in values), style=style)
    console.print(table)
    console.print(f"wrote {result.png} and {result.json} in {time.perf_counter() - start:.1f} s")


@app.command("audit", cls=_Command)
def audit_command(
    target: str = typer.Argument(..., metavar="FILE.py:FUNCTION",
                                 help="The per-example function: path/to/file.py:function."),
    in_axes: list[str] = typer.Option(  # noqa: B008
        [], "--in-axes", metavar="AXES", show_default=False,
        help="in_axes as in jax.vmap, e.g. '0,None'; repeat for nested vmaps (outermost first); 'none' for no "
             "vmap. (default: 0)"),
    arg: list[str] = typer.Option(  # noqa: B008
        [], "--arg", metavar="SPEC", show_default=False,
        help="One per positional argument of the function, in order, per example: float32[8,3], int32[], key, "
             "key[4], rawkey."),
    axis_name: list[str] = typer.Option(  # noqa: B008
        [], "--axis-name", metavar="NAME", show_default=False,
        help="The vmap's axis_name (one per --in-axes level), for axis_index."),
) -> None:
    """Find key misuse in a per-example function; exit 1 if anything is flagged, 2 on bad usage."""
    console = _console()
    from keyfan._audit import audit
    from keyfan._cli_specs import load_function, parse_arg, parse_in_axes

    f = _load_target(console, target, load_function)
    try:
        if not arg and _required_positional(f):
            raise ValueError(f"no --arg given, but {target} takes {', '.join(_required_positional(f))}: give one "
                             "--arg per positional argument, in order, as a per-example spec (float32[8,3], "
                             "int32[], key, rawkey), e.g. --arg 'float32[3]' --arg key.")
        args = [parse_arg(a) for a in arg]
        axes = parse_in_axes(in_axes)
        names: Any = None if not axis_name else axis_name if isinstance(axes, list) else axis_name[0]
        report = audit(f, *args, in_axes=axes, axis_name=names)
    except (ValueError, TypeError) as err:
        notes = "".join(f"\n{note}" for note in getattr(err, "__notes__", ()))
        console.print(f"keyfan audit: {err}{notes}", markup=False, style="red")
        raise typer.Exit(code=2) from err
    console.print(report)
    raise typer.Exit(code=0 if report.ok else 1)


def _required_positional(f: Any) -> list[str]:
    """The names of ``f``'s positional parameters without a default ([] if it has no signature)."""
    import inspect

    try:
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds and p.default is inspect.Parameter.empty]


def _fail(message: str) -> typer.Exit:
    """Prints ``message`` as one line on stderr; the caller raises the returned ``Exit(2)``."""
    Console(stderr=True, soft_wrap=True).print(message, markup=False, style="red")
    return typer.Exit(code=2)


def _check_out_dir(option: str, path: Path) -> None:
    """Exits 2 with one line before any work unless ``path`` is a writable directory."""
    from keyfan._checks import check_writable_dir

    try:
        check_writable_dir(option, path)
    except OSError as err:
        raise _fail(f"keyfan: {err}") from None


def _load_target(console: Console, target: str, load: Any) -> Any:
    """The audited function; a target that does not load exits 2 with one line naming the file,
    the line and the error (a syntax error, a failing import, an exception in the module)."""
    try:
        return load(target)
    except SyntaxError as err:
        raise _fail(f"keyfan audit: {err.filename}:{err.lineno}: {type(err).__name__}: {err.msg}") from None
    except (Exception, SystemExit) as err:
        where = _frames_in(err, target)
        if isinstance(err, (ValueError, TypeError)) and not where:
            raise _fail(f"keyfan audit: {err}") from None  # keyfan's own message about the target
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise _fail(f"keyfan audit: importing {target.rpartition(':')[0]} failed at {where or 'import'}: "
                    f"{type(err).__name__}: {first}") from None


def _frames_in(err: BaseException, target: str) -> str:
    """``file:line`` of the innermost traceback frame in the target's file (or in a module it
    imports, outside keyfan and the standard library), or ``""``."""
    import traceback

    path = Path(target.rpartition(":")[0]).resolve()
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        if Path(frame.filename).resolve() == path:
            return f"{frame.filename}:{frame.lineno}"
    outside = [f for f in frames if "keyfan" not in f.filename and "importlib" not in f.filename
               and not f.filename.startswith("<")]
    return f"{outside[-1].filename}:{outside[-1].lineno}" if outside else ""


@app.command(cls=_Command)
def stream(
    layout: Annotated[str, typer.Option(metavar="LAYOUT", help="per-example, example-ids, steps, named, or shared "
                                                               "(the negative control: one key for every example).")
                      ] = "per-example",
    batch: Annotated[int, typer.Option(min=2, metavar="B", help="The number of examples whose streams are "
                                                                "interleaved (at least 2).")] = 64,
    length: Annotated[int, typer.Option(min=1, metavar="L", help="Words per example in each block.")] = 1024,
    n_bytes: Annotated[int | None, typer.Option("--bytes", min=0, metavar="N", show_default=False,
                                                help="Bytes to write; 0 writes without end, for a battery reading "
                                                     "stdin. Default: one block, 4*B*L bytes.")] = None,
    seed: Annotated[int, typer.Option(metavar="SEED", help="The seed of kf.key.")] = 0,
) -> None:
    """Write per-example streams as raw little-endian uint32 words to stdout, column-wise (word j of
    every example, then word j+1), for external batteries: `keyfan stream | dieharder -a -g 200`."""
    from keyfan._layouts import LAYOUTS, stream_bytes

    if layout not in LAYOUTS:
        raise _fail(f"keyfan stream: --layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
    if sys.stdout.isatty():
        raise _fail("keyfan stream: stdout is a terminal; pipe the binary words into a battery or a file "
                    "(keyfan stream ... > words.bin).")
    try:
        chunks = stream_bytes(layout, seed, batch, length, n_bytes)
        out = sys.stdout.buffer
        for chunk in chunks:
            out.write(chunk)
        out.flush()
    except (TypeError, ValueError) as err:
        raise _fail(f"keyfan stream: {err}") from None
    except BrokenPipeError:  # the battery stopped reading: a normal end
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main() -> None:
    """Entry point of the ``keyfan`` console script."""
    app()
