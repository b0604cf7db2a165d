"""Console output: rich for people, plain JSON on stdout for machines."""
from __future__ import annotations

import json
import sys
from typing import Iterable, NoReturn

import typer
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from app.text import visible

console = Console()
errors = Console(stderr=True)


def print_json(data) -> None:
    """Write JSON to stdout and nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def plain(value) -> Text:
    """A value for the terminal as text: never read as markup, control characters shown as escapes (a Text stays as styled)."""
    if isinstance(value, Text):
        return value
    return Text(visible("" if value is None else str(value)))


def styled(value, style: str) -> Text:
    """`plain(value)` in a style."""
    return Text(visible("" if value is None else str(value)), style=style)


def complain(message: str) -> None:
    """Print an error line on stderr, as text: it may quote outside values (names, providers' errors)."""
    errors.print(Text.assemble(("error:", "bold red"), " ", plain(message)), highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error on stderr and exit with `code`."""
    complain(message)
    raise typer.Exit(code)


# Columns holding ids an operator copies into the next command: kept whole, on one line.
WHOLE_COLUMNS = frozenset({"external id", "reference", "charge", "payment", "session"})
# Below this width a folded column is no longer readable; the rows are then shown one field per line.
READABLE_COLUMN = 10


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable]) -> "Listing":
    """Rows as a rich table; too narrow a terminal shows them one field per line, so ids stay whole.

    Cells are text as they are (see `plain`): names, payloads and providers' errors never become markup.
    """
    return Listing(title, list(columns), [[plain(v) for v in row] for row in rows])


class Listing:
    """A table that keeps id columns whole on one line, folding the others, or lists records when that cannot fit."""

    def __init__(self, title: str | None, columns: list[str], rows: list[list[Text]]):
        self.title, self.columns, self.rows = title, columns, rows

    def _table(self) -> Table:
        t = Table(title=self.title, show_lines=False, header_style="bold")
        for index, column in enumerate(self.columns):
            if column in WHOLE_COLUMNS:
                t.add_column(column, no_wrap=True, min_width=max([len(column), *(r[index].cell_len for r in self.rows)]))
            else:
                # Fold rather than cut: nothing an operator reads is ever lost off the edge.
                t.add_column(column, overflow="fold")
        for row in self.rows:
            t.add_row(*row)
        return t

    def _fits(self, width: int) -> bool:
        whole = sum(max([len(c), *(r[i].cell_len for r in self.rows)]) for i, c in enumerate(self.columns) if c in WHOLE_COLUMNS)
        folded = sum(1 for c in self.columns if c not in WHOLE_COLUMNS)
        borders = 3 * len(self.columns) + 1
        return whole + folded * READABLE_COLUMN + borders <= width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self._fits(options.max_width):
            yield self._table()
            return
        if self.title:
            yield Text(self.title, style="bold")
        label = max(len(c) for c in self.columns)
        for number, row in enumerate(self.rows):
            if number:
                yield Text("")
            for column, value in zip(self.columns, row):
                yield Text.assemble((f"{column:<{label}}  ", "bold"), value)
