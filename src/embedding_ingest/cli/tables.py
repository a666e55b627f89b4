"""Tables for people, at the terminal's width (80 columns is the case designed for).

Rich, left to itself, shrinks every column until the table fits: ids fold over eight rows and headers
split ("statu/s"). Here the table is planned instead (`fitted`):
- a cell never wraps unless its column is free text (`Column(wrap=True)`: a message, a path);
- a header never splits (a column is never narrower than its header);
- an id column shows the shortest prefix that is unique among *all* ids of its kind (git style,
  at least 8 characters; commands that take an id accept that prefix);
- when the planned width passes the terminal's, optional columns go, highest `drop` first (an
  optional column with no values never shows); if it still does not fit, cells fold rather than
  being cut.
`--wide` (the `wide` context) keeps every column and whole ids, and lets lines pass the terminal's
width; `--output json` always carries everything. One-record views read vertically (`record`).

Width arithmetic (Rich 15, default box and padding): a table is sum(column widths) + 3 per column + 1."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

MIN_PREFIX = 8  # as `git log --oneline`: short enough to read, long enough to stay unique for long
WRAP_FLOOR = 16  # a free-text column keeps at least this many cells (or its longest value, if shorter)

_wide: ContextVar[bool] = ContextVar("wide", default=False)


@contextmanager
def wide(enabled: bool = True) -> Iterator[None]:
    """Within: tables keep every column and whole ids (`--wide`)."""
    token = _wide.set(enabled)
    try:
        yield
    finally:
        _wide.reset(token)


def is_wide() -> bool:
    return _wide.get()


@dataclass(frozen=True)
class Column:
    """A table column. `wrap`: free text that may fold across lines (ids never do); `drop`: 0 = always
    shown, otherwise dropped when the table does not fit, highest first; `ids`: this column holds ids,
    shown as the shortest prefix unique among `ids` (every id of the kind, not only the rows shown);
    `wide_only`: shown only with --wide (a whole id other columns already stand for); `plain`: its
    integers are numbers that name something (a line of a file, an event id) or are data, shown as they
    are; any other integer is a count, shown with thousands separators (1,381) as everywhere else;
    `asked`: a column the user asked for, whose dropping is said under the table."""

    header: str
    justify: Literal["left", "right", "center"] = "left"
    wrap: bool = False
    drop: int = 0
    ids: Sequence[str] | None = None
    wide_only: bool = False
    plain: bool = False
    asked: bool = False  # the user asked for it (query --show): if dropped to fit, a line says so


# A file's line number (where a bad record or line is): a number that names something, never "1,022".
FILE_LINE = Column("line", justify="right", plain=True)


def prefix_length(ids: Sequence[str], minimum: int = MIN_PREFIX) -> int:
    """The shortest prefix length (>= minimum) at which every id in `ids` is unique: one more than the
    longest common prefix of neighbours in sorted order. Ids shorter than that are shown whole."""
    ordered = sorted(set(ids))
    longest = 0
    for before, after in zip(ordered, ordered[1:], strict=False):
        common = 0
        for a, b in zip(before, after, strict=False):
            if a != b:
                break
            common += 1
        longest = max(longest, common)
    return max(minimum, longest + 1)


def _cell(value: Any, plain: bool = False) -> str:
    """A value as a cell: None empty, a count (an int) with thousands separators unless `plain`."""
    if isinstance(value, int) and not isinstance(value, bool) and not plain:
        return f"{value:,}"
    return "" if value is None else str(value)


class _AtLeast:
    """Render `inner` at `width` cells even when the terminal is narrower (`--wide`): the terminal
    then wraps whole lines, and nothing inside the table folds or is cut."""

    def __init__(self, inner: RenderableType, width: int) -> None:
        self.inner, self.width = inner, width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from console.render(self.inner, options.update(width=max(options.max_width, self.width)))


def _planned_width(columns: Sequence[Column], rows: Sequence[Sequence[str]], index: Sequence[int]) -> int:
    total = 1
    for i in index:
        column = columns[i]
        longest = max([cell_len(column.header), *(cell_len(line) for row in rows
                                                   for line in row[i].splitlines() or [""])])
        if column.wrap:
            longest = max(cell_len(column.header), min(longest, WRAP_FLOOR))
        total += longest + 3
    return total


def fitted(title: str | None, columns: Sequence[Column], rows: Sequence[Sequence[Any]], *,
           width: int | None = None, console: Console | None = None) -> RenderableType:
    """`rows` (raw values; None shows empty) as a table planned for `width` (default: the console's).
    The title is a line of its own above the table, so a long title wraps as text and never squeezes
    the table."""
    if not rows:  # an empty box says less than the title ("0 batches") alone
        return Text(title or "(none)", style="bold")
    cells = [[_cell(value, column.plain) for value, column in zip(row, columns, strict=False)]
             for row in rows]
    full = is_wide()
    for i, column in enumerate(columns):
        if column.ids is not None and not full:
            length = prefix_length([*column.ids, *(row[i] for row in cells if row[i])])
            for row in cells:
                row[i] = row[i][:length]
    # An optional column with nothing in it says nothing: it goes first.
    shown = [i for i, column in enumerate(columns)
             if full or (not column.wide_only and (not column.drop or any(row[i] for row in cells)))]
    limit = width or (console or _default_console()).width
    while not full and _planned_width(columns, cells, shown) > limit:
        droppable = [i for i in shown if columns[i].drop]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
    # Too wide even so (an 80-character execution name at 80 columns): every cell may fold, so that
    # nothing is ever cut.
    crowded = not full and _planned_width(columns, cells, shown) > limit
    table = Table(show_lines=False)
    for i in shown:
        column = columns[i]
        table.add_column(column.header, justify=column.justify, no_wrap=not (column.wrap or crowded),
                         overflow="fold", min_width=cell_len(column.header))
    for row in cells:
        table.add_row(*(row[i] for i in shown))
    body: RenderableType = _AtLeast(table, _planned_width(columns, cells, shown)) if full else table
    left_out = [columns[i].header for i, column in enumerate(columns)
                if column.asked and i not in shown and any(row[i] for row in cells)]
    if left_out:  # never silently: the user asked for it
        body = Group(body, Text(f"({', '.join(left_out)} left out to fit {limit} columns; --wide or "
                                "--output json shows it)", style="dim"))
    return Group(Text(title, style="bold"), body) if title else body


class _Record:
    """Key/value lines: the keys in a column (never wrapped), each value beside its key, wrapped (long
    words folded) under itself; no line is padded with spaces to the terminal's width."""

    def __init__(self, pairs: Sequence[tuple[str, Text]]) -> None:
        self.pairs = pairs

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        keys = max((cell_len(key) for key, _ in self.pairs), default=0)
        room = max(options.max_width - keys - 2, WRAP_FLOOR)
        for key, value in self.pairs:
            lines = list(value.wrap(console, room, overflow="fold")) if value.plain else []
            for line in lines:
                line.rstrip()
            beside = (" " * (keys - cell_len(key) + 2), lines[0]) if lines else ()
            yield Text.assemble((key, "bold"), *beside)
            for line in lines[1:]:
                yield Text.assemble(" " * (keys + 2), line)


def record(title: str | None, pairs: Sequence[tuple[str, Any]]) -> RenderableType:
    """One record read vertically: a key column (never wrapped) and its value (folds if long)."""
    shown = _Record([(key, value if isinstance(value, Text) else Text(_cell(value))) for key, value in pairs])
    return Group(Text(title, style="bold"), shown) if title else shown


_measure = Console()  # only for the terminal's width, which Rich reads afresh (COLUMNS, the tty) each time


def _default_console() -> Console:
    return _measure


__all__ = ["FILE_LINE", "MIN_PREFIX", "Column", "fitted", "is_wide", "prefix_length", "record", "wide"]
