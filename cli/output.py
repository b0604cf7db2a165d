"""Console output: rich for people, plain JSON on stdout for machines, one tab-separated line per row when piped."""
from __future__ import annotations

import json
import sys
from typing import Iterable, NoReturn

import typer
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from app.text import visible

class _Console(Console):
    """A console that prints a listing piped elsewhere as whole lines, never wrapped or cut at the terminal's width."""

    def print(self, *objects, **kwargs) -> None:  # noqa: A003 - rich's name
        if objects and not self.is_terminal and all(isinstance(o, Listing) for o in objects):
            for listing in objects:
                self.file.write(listing.as_lines())
            self.file.flush()
            return
        super().print(*objects, **kwargs)


console = _Console()
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


# Columns of prose: shortened with an ellipsis to fit. Every other column (ids, keys, timestamps, amounts)
# is shown whole on one line or not at all.
PROSE_COLUMNS = frozenset({"title", "error", "detail", "what", "labels", "value", "message", "description", "events", "url", "name",
                           "verdict"})
# Narrower than this, a shortened prose column says too little; it is dropped (or the rows listed) instead.
READABLE_COLUMN = 12


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable], optional: Iterable[str] = ()) -> "Listing":
    """Rows as a table that fits the terminal: prose shortened, then the `optional` columns dropped in the order given.

    Ids, keys and timestamps are never broken: when even the other columns cannot fit, each row is shown one
    field per line. Piped elsewhere (not a terminal), each row is one tab-separated line, after a header line.
    Cells are text as they are (see `plain`): names, payloads and providers' errors never become markup.
    """
    return Listing(title, list(columns), [[plain(v) for v in row] for row in rows], list(optional))


class Listing:
    """A table that fits its width by shortening prose and dropping optional columns, or lists records when it cannot."""

    def __init__(self, title: str | None, columns: list[str], rows: list[list[Text]], optional: list[str]):
        self.title, self.columns, self.rows, self.optional = title, columns, rows, optional
        self.widths = [max([len(c), *(r[i].cell_len for r in rows)]) for i, c in enumerate(columns)]

    def _layout(self, width: int) -> list[tuple[int, int]] | None:
        """(column index, width) of each column shown, or None when even the required columns cannot fit."""
        shown = list(range(len(self.columns)))
        droppable = [self.columns.index(c) for c in self.optional if c in self.columns]
        while True:
            borders = 2 * (len(shown) - 1)
            whole = sum(self.widths[i] for i in shown if self.columns[i] not in PROSE_COLUMNS)
            prose = [i for i in shown if self.columns[i] in PROSE_COLUMNS]
            room = width - borders - whole
            if room >= sum(min(self.widths[i], READABLE_COLUMN) for i in prose):
                return list(zip(shown, self._prose_widths(shown, prose, room)))
            if not droppable:
                return None
            shown.remove(droppable.pop(0))

    def _prose_widths(self, shown: list[int], prose: list[int], room: int) -> list[int]:
        """Each shown column's width: its widest value, prose sharing what room is left (narrowest first)."""
        widths = {i: self.widths[i] for i in shown}
        left = room
        for count, i in enumerate(sorted(prose, key=lambda i: self.widths[i])):
            widths[i] = min(self.widths[i], left // (len(prose) - count))
            left -= widths[i]
        return [widths[i] for i in shown]

    def _table(self, layout: list[tuple[int, int]]) -> Table:
        # No borders: two spaces between columns leave the room to the values.
        t = Table(title=self.title, show_lines=False, header_style="bold", box=None, padding=(0, 1), pad_edge=False)
        for index, width in layout:
            t.add_column(self.columns[index], width=width, no_wrap=True, overflow="ellipsis")
        for row in self.rows:
            t.add_row(*(row[index] for index, _ in layout))
        return t

    def as_lines(self) -> str:
        """The header, then each row, as tab-separated lines of plain text (what a pipe gets)."""
        clean = lambda value: " ".join(value.split())  # noqa: E731 - a tab or newline would split the row
        header = "\t".join(self.columns) + "\n"
        return header + "".join("\t".join(clean(cell.plain) for cell in row) + "\n" for row in self.rows)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        layout = self._layout(options.max_width)
        if layout is not None:
            yield self._table(layout)
            return
        if self.title:
            yield Text(self.title, style="bold")
        label = max(len(c) for c in self.columns)
        for number, row in enumerate(self.rows):
            if number:
                yield Text("")
            for column, value in zip(self.columns, row):
                yield Text.assemble((f"{column:<{label}}  ", "bold"), value)
