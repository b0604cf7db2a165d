"""Console output: rich for people, plain JSON on stdout for machines."""
from __future__ import annotations

import json
import sys
from typing import Iterable, NoReturn

import typer
from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)


def print_json(data) -> None:
    """Write JSON to stdout and nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error on stderr and exit with `code`."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable]) -> Table:
    """A rich table of strings."""
    t = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        # Fold rather than cut: an operator must be able to copy a whole charge or event id.
        t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    return t
