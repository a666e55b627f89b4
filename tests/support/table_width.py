"""What "fits 80 columns" means for the CLI's tables, checked on a command's captured output: every
table line within the width, every header on one line, and listed ids whole (or a unique prefix),
never broken over two lines."""

from __future__ import annotations

WIDTH = 80


def assert_tables_fit(output: str, width: int = WIDTH) -> None:
    """Every table line fits `width` and every header is one line (between ┏ and ┡)."""
    lines = output.splitlines()
    for number, line in enumerate(lines):
        if line[:1] in "┏┃┡│└":
            assert len(line) <= width, f"wider than {width}: {line!r}"
        if line.startswith("┏"):
            separator = next(i for i in range(number, len(lines)) if lines[i].startswith("┡"))
            assert separator == number + 2, f"a header wraps: {lines[number:separator + 1]}"


def _names_one(cell: str, ids: list[str]) -> bool:
    return any(i.startswith(cell) and len(cell) >= min(8, len(i)) for i in ids)


def assert_ids_whole(table: str, ids: list[str]) -> None:
    """Each id shows in a cell of its own, whole or as a prefix of at least 8 characters, and the cell
    below it is empty or another id (a wrapped id would go on there)."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in table.splitlines()]
    for item_id in ids:
        found = [(r, c) for r, row in enumerate(rows) for c, cell in enumerate(row)
                 if cell and _names_one(cell, [item_id])]
        assert found, f"{item_id} is not in the table"
        for r, c in found:
            below = rows[r + 1][c] if r + 1 < len(rows) and c < len(rows[r + 1]) else ""
            assert below == "" or _names_one(below, ids), f"{item_id} goes on over two lines: {below!r}"
