"""The ``keyfan`` command line: a thin typer layer over library functions, no logic of its own."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="keyfan: per-example randomness in JAX that is correct, reproducible and fast.")
console = Console()


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


def main() -> None:
    app()
