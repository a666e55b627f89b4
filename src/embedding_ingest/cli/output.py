"""One way to print results: `--output json` (stable keys, machine-readable) or rich tables."""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from asl_local.errors import AslError
from embedding_ingest.cli import query
from embedding_ingest.cli.formats import OutputFormat
from embedding_ingest.exceptions import ConfigurationError, EmbeddingIngestError

EXIT_CONFIGURATION = 2  # a bad setting or usage, as click exits for a bad option
DEBUG_VARIABLE = "EMBEDDING_INGEST_DEBUG"
UTC_VARIABLE = "EMBEDDING_INGEST_UTC"


OutputOption = typer.Option(OutputFormat.TABLE, "--output", "-o",
                            help="table (default), json, or text (as the AWS CLI's)", case_sensitive=False)

stdout = Console()
stderr = Console(stderr=True)


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, sort_keys=True, default=str) + "\n")


def debugging() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def when(epoch: float | None) -> str | None:
    """Epoch seconds as ISO-8601 for tables: local time ("2026-11-29T17:07:49", no offset, to stay
    narrow), or UTC ("2026-11-29T16:07:49Z") under --utc / EMBEDDING_INGEST_UTC=1. JSON keeps the
    numbers (as AWS's JSON protocol does)."""
    if epoch is None:
        return None
    if os.environ.get(UTC_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on"):
        return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return datetime.fromtimestamp(epoch).isoformat(timespec="seconds")


# Columns holding when() stamps: kept on one line while the other columns wrap.
TIME_COLUMNS = frozenset({"time", "startDate", "stopDate", "started", "stopped", "updated", "published_at",
                          "submitted"})


def counted(count: int, noun: str) -> str:
    """"1 batch", "3 batches", "1 execution", "0 lines": a count with its noun in the right number."""
    plural = noun + ("es" if noun.endswith(("s", "sh", "ch", "x")) else "s")
    return f"{count} {noun if count == 1 else plural}"


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A table whose cells wrap (fold) instead of being cut: ids are never shortened."""
    result = Table(title=title, show_lines=False)
    for column in columns:
        result.add_column(column, overflow="fold", no_wrap=column in TIME_COLUMNS)
    for row in rows:
        result.add_row(*("" if cell is None else str(cell) for cell in row))
    return result


def emit(value: Any, output: OutputFormat, render: Callable[[Any], Any]) -> None:
    """Print `value` as JSON, or whatever rich renderable(s) `render(value)` returns; under --query, the
    query's result as JSON, text or a generic table (cli/query.py); `--output text` as the AWS CLI."""
    if query.active() or output is OutputFormat.TEXT:
        value = query.apply(json.loads(json.dumps(to_jsonable(value), default=str)))
        render = query.generic_table
    if output is OutputFormat.TEXT:
        sys.stdout.write(query.to_text(value) + "\n")
        return
    if output is OutputFormat.JSON:
        emit_json(value)
        return
    rendered = render(value)
    for item in rendered if isinstance(rendered, (list, tuple)) else [rendered]:
        stdout.print(item)


@contextmanager
def progress(output: OutputFormat, description: str,
             total: int | None = None) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr for long work (silent with --output json); yields advance(n=1, **fields)."""
    if output is not OutputFormat.TABLE or not stderr.is_terminal:
        yield lambda *args, **kwargs: None
        return
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1, **fields: Any) -> None:
            bar.update(task, advance=n, **fields)

        yield advance


def fail(error: Exception, output: OutputFormat, code: int = 1) -> typer.Exit:
    """Report an error (JSON on stdout with --output json) and return the Exit to raise."""
    kind = type(error).__name__
    if isinstance(error, ConfigurationError):
        code = EXIT_CONFIGURATION
    if debugging():
        traceback.print_exception(error, file=sys.stderr)
    if output is OutputFormat.JSON:
        emit_json({"error": kind, "message": str(error),
                   "transient": bool(getattr(error, "transient", False))})
    else:
        # One line, whatever the width; the message is data, never rich markup.
        stderr.print(Text.assemble((kind, "bold red"), f": {error}"), highlight=False, soft_wrap=True)
    return typer.Exit(code)


def hint(output: OutputFormat, command: str | None) -> None:
    """One line on stderr saying what to run next (terminal output only; JSON carries it as data)."""
    if command and output is not OutputFormat.JSON:
        stderr.print(f"next: {command}", markup=False, highlight=False, soft_wrap=True)


def guarded(output: OutputFormat, action: Callable[[], Any]) -> Any:
    """`action()`, or exit 1 (2 for a configuration error) with the one-line report of an expected error:
    ours, or the ASL engine's (a definition `definitions run` refuses is the user's to fix, not a bug)."""
    try:
        return action()
    except (EmbeddingIngestError, AslError) as error:
        raise fail(error, output) from error
