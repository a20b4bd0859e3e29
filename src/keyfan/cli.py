"""The ``keyfan`` command line: a thin typer layer over library functions, no logic of its own."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="keyfan: per-example randomness in JAX that is correct, reproducible and fast.")
DEFAULT_RUN_DIR = Path("keyfan-out/ensemble")


def _console() -> Console:
    """A console sized when a command runs (``COLUMNS``, the terminal), not when keyfan is imported;
    120 columns when the output is a file or a pipe (CI logs), where rich would assume 80."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=120 if piped else None)


@app.callback()
def _root() -> None:
    """keyfan: per-example randomness in JAX that is correct, reproducible and fast."""


@app.command()
def tour() -> None:
    """Run every reference recipe, check its rows, and show the broadcast-key bug beside its fix."""
    console = _console()
    from keyfan.pitfalls import distinct_rows
    from keyfan.tour import broadcast_demo, run_tour

    table = Table(title="keyfan tour: the reference recipes (seed 0)")
    table.add_column("recipe", no_wrap=True)
    for column in ("output shape", "rows pairwise distinct", "reproduced bit for bit", "pattern"):
        table.add_column(column)
    failed = False
    for row in run_tour():
        failed |= not row.ok
        table.add_row(row.recipe, str(row.shape),
                      f"[green]{row.distinct}[/]" if row.holds else f"[red]{row.distinct}[/]",
                      "[green]yes[/]" if row.reproducible else "[red]NO[/]", row.note)
    console.print(table)

    demo = broadcast_demo()
    pitfall = Table(title="The pitfall: a key broadcast with in_axes=(0, None) (noise added to zeros)")
    pitfall.add_column("example")
    pitfall.add_column("bug: vmap(add_noise, in_axes=(0, None))(xs, key)", style="red")
    pitfall.add_column("fix: vmap(add_noise)(xs, split(key, B))", style="green")
    for i, (bug, fix) in enumerate(zip(demo.bug.tolist(), demo.fix.tolist(), strict=True)):
        pitfall.add_row(str(i), " ".join(f"{v:+.4f}" for v in bug), " ".join(f"{v:+.4f}" for v in fix))
    console.print(pitfall)
    console.print(
        f"bug rows pairwise distinct: [red]{distinct_rows(demo.bug)}[/]   "
        f"fix rows pairwise distinct: [green]{distinct_rows(demo.fix)}[/]"
    )
    if failed:
        raise typer.Exit(code=1)


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="Leave out the largest shape; samplers at 1e5 (under a minute)."),
    runs: int = typer.Option(21, min=3, help="Timed samples per case; the median is reported."),
    sample_ms: float | None = typer.Option(None, min=0.0, help="Each sample averages enough calls to last this "
                                                               "long (0: one call per sample; default 20, or "
                                                               "10 with --quick)."),
    out: Path = typer.Option(Path("benchmarks/results"), help="Directory for bench.json and bench.png."),  # noqa: B008
) -> None:
    """Time keyfan against the canonical patterns and NumPy; write JSON and a PNG chart."""
    console = _console()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from keyfan.bench import report, run_cases
    from keyfan.bench.suite import default_cases

    if sample_ms is None:
        sample_ms = 10.0 if quick else 20.0
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

    goals = Table(title="targets (this run)")
    goals.add_column("target", overflow="fold")
    for column in ("value", "goal", "met"):
        goals.add_column(column, justify="right", no_wrap=True, min_width=6)
    for t in report.targets(results):
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "n/a"}[t["met"]]
        goals.add_row(t["target"], fmt(t["value"], ".2f"), f"{t['goal']}", met)
    console.print(goals)

    name = "bench-quick" if quick else "bench"
    report.write_json(out / f"{name}.json", results, quick=quick)
    report.write_png(out / f"{name}.png", results)
    console.print(f"wrote {out / f'{name}.json'} and {out / f'{name}.png'}")


@app.command()
def ensemble(
    members: Annotated[int, typer.Option("--members", "-k", help="K, the number of members.")] = 8,
    epochs: Annotated[int | None, typer.Option(help="Training epochs [default: 100 for moons, 200 for regression].",
                                               show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="The seed every random choice of the run derives from.")] = 0,
    dataset: Annotated[str, typer.Option(help="'moons' (classification) or 'regression' (noisy 1-D curve).")] = "moons",
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="Where the PNG and JSON go.")] = DEFAULT_RUN_DIR,
    bootstrap: Annotated[bool, typer.Option("--bootstrap/--no-bootstrap",
                                            help="Train each member on its own bootstrap resample.")] = False,
) -> None:
    """Train a deep ensemble of small MLPs with dropout on a built-in dataset; report member and ensemble metrics."""
    console = _console()
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from keyfan.ensemble import RunConfig, report_table, run_ensemble

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
        result = run_ensemble(config, on_epoch=lambda epoch, losses: progress.update(
            task, advance=1, loss=f"mean member loss {float(losses.mean()):.4f}"))
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


@app.command("audit")
def audit_command(
    target: str = typer.Argument(..., help="The per-example function: path/to/file.py:function."),
    in_axes: list[str] = typer.Option(  # noqa: B008
        [], "--in-axes", help="in_axes as in jax.vmap, e.g. '0,None'; repeat for nested vmaps "
        "(outermost first); 'none' for no vmap. Default 0."),
    arg: list[str] = typer.Option(  # noqa: B008
        [], "--arg", help="One per positional argument, per-example: float32[8,3], int32[], key, rawkey."),
    axis_name: list[str] = typer.Option(  # noqa: B008
        [], "--axis-name", help="The vmap's axis_name (one per --in-axes level), for axis_index."),
) -> None:
    """Find key misuse in a per-example function; exit 1 if anything is flagged."""
    console = _console()
    from keyfan._audit import audit
    from keyfan._audit._specs import load_function, parse_arg, parse_in_axes

    f = _load_target(console, target, load_function)
    try:
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


@app.command()
def stream(
    layout: Annotated[str, typer.Option(help="per-example, example-ids, steps, named, or shared (the negative "
                                             "control: one key for every example).")] = "per-example",
    batch: Annotated[int, typer.Option(min=2, help="B, the number of examples whose streams are interleaved.")] = 64,
    length: Annotated[int, typer.Option(min=1, help="L, words per example in each block.")] = 1024,
    n_bytes: Annotated[int | None, typer.Option("--bytes", min=0, help="Bytes to write (0: without end, for a battery "
                                                                 "reading stdin) [default: one block, 4*B*L].",
                                                show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="The seed of kf.key.")] = 0,
) -> None:
    """Write per-example streams as raw little-endian uint32 words to stdout, column-wise (word j of
    every example, then word j+1), for external batteries: `keyfan stream | dieharder -a -g 200`."""
    from keyfan.layouts import LAYOUTS, stream_bytes

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
