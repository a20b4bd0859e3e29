"""The ``keyfan`` command line: a thin typer layer over library functions, no logic of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="keyfan: per-example randomness in JAX that is correct, reproducible and fast.")
console = Console()
DEFAULT_RUN_DIR = Path("keyfan-out/ensemble")


@app.callback()
def _root() -> None:
    """keyfan: per-example randomness in JAX that is correct, reproducible and fast."""


@app.command()
def tour() -> None:
    """Run every reference recipe, check its rows, and show the broadcast-key bug beside its fix."""
    from keyfan.pitfalls import distinct_rows
    from keyfan.tour import broadcast_demo, run_tour

    table = Table(title="keyfan tour: the reference recipes (seed 0)")
    table.add_column("recipe", no_wrap=True)
    for column in ("output shape", "rows pairwise distinct", "reproduced bit for bit", "pattern"):
        table.add_column(column)
    failed = False
    for row in run_tour():
        ok = row.distinct != "NO" and row.reproducible
        failed |= not ok
        table.add_row(row.recipe, str(row.shape),
                      f"[green]{row.distinct}[/]" if row.distinct != "NO" else "[red]NO[/]",
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
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from keyfan.ensemble import RunConfig, report_table, run_ensemble

    try:
        config = RunConfig(dataset=dataset, members=members, epochs=epochs, seed=seed, out_dir=str(out_dir),
                           bootstrap=bootstrap)
    except (TypeError, ValueError) as err:
        raise typer.BadParameter(str(err)) from err
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


def main() -> None:
    app()
