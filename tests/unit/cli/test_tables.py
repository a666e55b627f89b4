"""Tables at 80 columns: ids are unique prefixes shown whole on one line, headers never split, the
optional columns go first; --wide keeps every column and whole ids."""

from __future__ import annotations

import uuid

from rich.console import Console

from embedding_ingest.cli.tables import Column, fitted, prefix_length, record, wide


def _render(renderable, width: int = 80, crop: bool = True) -> list[str]:
    console = Console(width=width, record=True, color_system=None, force_terminal=False)
    with console.capture() as captured:
        console.print(renderable, crop=crop)  # as output.emit prints: crop=False with --wide
    return captured.get().splitlines()


IDS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"batch-{n}")) for n in range(1000)]
COLUMNS = [Column("batch", ids=IDS), Column("type"), Column("status"), Column("items", justify="right"),
           Column("updated", drop=2), Column("provider", drop=3), Column("provider batch", drop=4),
           Column("last error", wrap=True, drop=1)]
ROWS = [[batch_id, "line", "IN_PROGRESS", 250, "2026-12-06T23:29:59", "in_progress",
         "batch_c1a9b410df92323f8b937ceb", "the provider said the input file is not valid JSONL at line 3"]
        for batch_id in IDS[:3]]


def test_a_prefix_is_unique_among_every_id_and_at_least_8_long():
    length = prefix_length(IDS)

    assert length == 8
    assert len({batch_id[:length] for batch_id in IDS}) == len(IDS)
    assert prefix_length(["abcdefgh-1", "abcdefgh-2"]) == 10
    assert prefix_length(["x"]) == 8


def test_at_80_columns_ids_and_headers_stay_whole_and_optional_columns_go():
    lines = _render(fitted("3 batches", COLUMNS, ROWS))

    assert all(len(line) <= 80 for line in lines)
    header = next(line for line in lines if "batch" in line and "status" in line)
    assert lines.index(header) + 1 == next(i for i, line in enumerate(lines) if line.startswith("┡"))
    for batch_id in IDS[:3]:
        assert sum(batch_id[:8] in line for line in lines) == 1
    assert "provider batch" not in header and "last error" in header  # dropped in order of `drop`


def test_wide_keeps_every_column_and_whole_ids_past_the_width():
    with wide():
        lines = _render(fitted("3 batches", COLUMNS, ROWS), crop=False)

    assert any(len(line) > 80 for line in lines)
    assert all(any(batch_id in line for line in lines) for batch_id in IDS[:3])
    assert any("provider batch" in line for line in lines)


def test_an_optional_column_with_no_values_is_left_out():
    lines = _render(fitted(None, [Column("a"), Column("b", drop=1)], [["x", None], ["y", ""]]))

    assert "b" not in lines[1]


def test_one_record_reads_vertically_without_a_box():
    lines = _render(record("Execution r1", [("name", "r1"), ("summary", "word " * 40)]))

    assert lines[0] == "Execution r1"
    assert lines[1].split() == ["name", "r1"] and all("│" not in line for line in lines)
    assert all(len(line) <= 80 for line in lines) and len(lines) > 3  # the long value folds
    assert lines[2].startswith("summary  word word") and lines[3].startswith(" " * 9 + "word")
    assert all(line == line.rstrip() for line in lines)  # no line padded to the terminal's width
