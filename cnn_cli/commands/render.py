"""Rich rendering of results for the terminal (kept apart from the numbers)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def print_evaluation(result, title: str, console: Console | None = None) -> None:
    console = console or Console()
    console.print(f"[bold]{title}[/bold]: accuracy {100 * result.accuracy:.2f}%  "
                  f"loss {result.loss:.4f}  samples {result.samples:,}")
    classes = len(result.per_class)
    names = result.class_names() if hasattr(result, "class_names") else [str(c) for c in range(classes)]
    numbered = any(name != str(c) for c, name in enumerate(names))
    table = Table(title="confusion matrix (rows: true class, columns: predicted)", show_lines=False)
    table.add_column("true", justify="right", style="bold")
    for c in range(classes):
        # Class names head the rows; the columns keep the narrow class numbers so ten fit a terminal.
        table.add_column(str(c), justify="right")
    table.add_column("accuracy", justify="right", style="bold")
    for t in range(classes):
        cells = [(f"[green]{n}[/green]" if p == t else (str(n) if n else "[dim]·[/dim]"))
                 for p, n in enumerate(result.confusion[t])]
        row = f"{t} {escape(names[t])}" if numbered else str(t)
        table.add_row(row, *cells, f"{100 * result.per_class[t]:.1f}%")
    console.print(table)


def print_gradcheck(results, tolerance: float, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"gradient check: analytic vs central differences (pass < {tolerance:g})")
    table.add_column("case")
    table.add_column("layer")
    table.add_column("checked")
    table.add_column("max rel. error", justify="right")
    table.add_column("result")
    for r in results:
        verdict = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
        table.add_row(r.name, r.layer, ", ".join(sorted(r.errors)), f"{r.max_rel_error:.2e}", verdict)
    console.print(table)
    failed = sum(not r.passed for r in results)
    console.print(f"{len(results) - failed} passed, {failed} failed")
