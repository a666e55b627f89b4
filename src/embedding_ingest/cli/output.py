"""One way to print results: `--output json` (stable keys, machine-readable) or rich tables."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import typer
from pydantic import BaseModel
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from asl_local.errors import AslError
from embedding_ingest.cli import query
from embedding_ingest.cli.errors import (
    EXIT_CONFIGURATION,  # noqa: F401 - re-exported for commands that import it from here
    at_words,
    error_line,
    exit_code_for,
    one_line,
)
from embedding_ingest.cli.formats import OutputFormat
from embedding_ingest.cli.tables import Column, fitted
from embedding_ingest.cli.tables import wide as wide_tables
from embedding_ingest.exceptions import EmbeddingIngestError

DEBUG_VARIABLE = "EMBEDDING_INGEST_DEBUG"
UTC_VARIABLE = "EMBEDDING_INGEST_UTC"


OutputOption = typer.Option(OutputFormat.TABLE, "--output", "-o",
                            help="table (default), json, or text (as the AWS CLI's)", case_sensitive=False)
WideOption = typer.Option(False, "--wide", help="Tables: every column and whole ids (lines may pass the "
                                                "terminal's width); json always has everything")


def kind_argument(help: str = "line or word", default: Any = ...) -> Any:
    """The KIND argument (line or word) every command that takes one declares the same way."""
    return typer.Argument(default, help=help, metavar="KIND", case_sensitive=False, show_default=False)

# Spaces before a line break (ANSI style codes may sit between): what rich's word wrapping leaves at the
# end of each wrapped line.
_TRAILING_SPACES = re.compile(r" +(?=(?:\x1b\[[0-9;]*m)*\n)")


class TrimmedConsole(Console):
    """A rich Console whose lines end without the trailing spaces its word wrapping leaves (`...the
    batches ` before a break): nothing a reader sees changes, but copied or diffed output is clean."""

    def _render_buffer(self, buffer: Any) -> str:  # rich 15's one place where a print becomes text
        return _TRAILING_SPACES.sub("", super()._render_buffer(buffer))


stdout = TrimmedConsole()
stderr = TrimmedConsole(stderr=True)
# The arguments of the running command line (after the program name), set by entry.CliGroup.main.
invocation: list[str] = []


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
    return f"{count:,} {noun if count == 1 else plural}"


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> RenderableType:
    """A table of free-text columns (times stay on one line), headers never split; for columns with
    ids or a choice of what to drop at 80 columns, use tables.fitted with tables.Column."""
    return fitted(title, [Column(name, wrap=name not in TIME_COLUMNS) for name in columns], rows)


def emit(value: Any, output: OutputFormat, render: Callable[[Any], Any], *, wide: bool = False) -> None:
    """Print `value` as JSON, or whatever rich renderable(s) `render(value)` returns (`wide`: every
    column and whole ids, see tables.py); under --query, the query's result as JSON, text or a generic
    table (cli/query.py); `--output text` as the AWS CLI."""
    if query.active() or output is OutputFormat.TEXT:
        value = query.apply(json.loads(json.dumps(to_jsonable(value), default=str)))
        render = query.generic_table
    if output is OutputFormat.TEXT:
        sys.stdout.write(query.to_text(value))
        return
    if output is OutputFormat.JSON:
        emit_json(value)
        return
    with wide_tables(wide):
        rendered = render(value)
        for item in rendered if isinstance(rendered, (list, tuple)) else [rendered]:
            stdout.print(item, crop=not wide)  # --wide: lines may pass the width (the terminal wraps)


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


def _command_path() -> str:
    """`embedding-ingest batches reset`: the command running now (click's context), for `try:` hints."""
    from typer._click.globals import get_current_context

    context = get_current_context(silent=True)
    return context.command_path if context is not None else "embedding-ingest"


def print_error(error: BaseException, message: str, try_: str | None, *, as_json: bool) -> None:
    """The one error style: `error: WHAT (WHY); try: COMMAND` on stderr, or on stdout under --output json
    `{"error": CLASS, "message", "try", "transient"}`."""
    if as_json:
        kind = getattr(error, "name", None) or type(error).__name__
        emit_json({"error": kind, "message": one_line(message), "try": try_,
                   "transient": bool(getattr(error, "transient", False))})
    else:
        error_out(error_line(message, try_))


def error_out(line: str) -> None:
    """An `error: ...` line on stderr: one line when piped; at a terminal broken between words
    (errors.at_words), never mid-word by the terminal. The message is data, never rich markup."""
    if stderr.is_terminal:
        line = at_words(line, stderr.width)
    stderr.print(Text.assemble(("error:", "bold red"), line.removeprefix("error:")), highlight=False,
                 soft_wrap=True)


def fail(error: Exception, output: OutputFormat, code: int | None = None, *,
         try_: str | None = None) -> typer.Exit:
    """Report an error in the one style and return the Exit to raise. The exit code is
    errors.exit_code_for(error) unless `code` is given; `try_` (or the error's own `try_`) is the command
    to suggest; by default the same command again for a transient error, else `COMMAND --help`."""
    if debugging():
        traceback.print_exception(error, file=sys.stderr)
    code = exit_code_for(error) if code is None else code
    suggestion = (try_ or getattr(error, "try_", None) or _lists_what_is_missing(error)
                  or _shows_what_exists(error))
    if suggestion is None and getattr(error, "transient", False):
        suggestion = shlex.join(["embedding-ingest", *invocation]) + "   (again, in a minute)"
    elif suggestion is None:
        suggestion = f"{_command_path()} --help"
    print_error(error, str(error), suggestion, as_json=output is OutputFormat.JSON)
    return typer.Exit(code)


def _lists_what_is_missing(error: Exception) -> str | None:
    """For an error about something that is not there, the command that lists what is (by class name,
    as errors.exit_code_for reads them): a version not kept -> `snapshots list KIND`; a prefix of more
    than one -> `snapshots list KIND --wide` (whole ids)."""
    database = getattr(error, "database", None)
    names = {cls.__name__ for cls in type(error).__mro__}
    if not isinstance(database, str):
        return None
    if "AmbiguousVersionError" in names:
        return f"embedding-ingest snapshots list {database.removesuffix('s')} --wide"
    if "VersionNotFoundError" in names:
        return f"embedding-ingest snapshots list {database.removesuffix('s')}"
    return None


_EXECUTION_ARN = re.compile(r"arn:[^'\s]*:execution:[^'\s]*")


def _shows_what_exists(error: Exception) -> str | None:
    """For an execution name already used (by class name, the engine's or the stores'), the command
    that shows that execution, or another --name."""
    if not type(error).__name__.startswith("ExecutionAlreadyExists"):
        return None
    arn = getattr(error, "execution_arn", None) or next(iter(_EXECUTION_ARN.findall(str(error))), None)
    if arn is None:
        return None
    return (f"{shlex.join(['embedding-ingest', 'describe-execution', arn.rsplit(':', 1)[-1]])}   "
            "(the execution of that name), or the same command with another --name")


def say(message: str, *, indent: int = 0) -> None:
    """A progress or outcome message on stderr (stdout keeps the result, --output json's document
    included): wrapped at words to the terminal's width (80 columns included; a word longer than a
    line, a path, is never cut), `indent` spaces before its first line and two more before the
    rest, no trailing spaces; the text is data, never rich markup."""
    lines = textwrap.wrap(message, width=max(stderr.width, 20), initial_indent=" " * indent,
                          subsequent_indent=" " * (indent + 2), break_long_words=False,
                          break_on_hyphens=False)
    stderr.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def hint(output: OutputFormat, command: str | None, *, fold: bool = False) -> None:
    """One line on stderr saying what to run next (terminal output only; JSON carries it as data).
    `fold`: a command wider than the terminal is broken before its options (`folded`)."""
    if command and output is not OutputFormat.JSON:
        line = f"next: {command}"
        stderr.print(folded(line, stderr.width) if fold else line, markup=False, highlight=False,
                     soft_wrap=True)


def folded(line: str, width: int) -> str:
    """`line` (a command) broken before its `--options` into lines of at most `width` characters where
    a piece allows, each but the last ending in ` \\` and the rest indented, so that it pastes into
    a shell as one command."""
    first, *options = re.split(r" (?=--)", line)
    lines = [first]
    for piece in options:
        if len(lines[-1]) + 1 + len(piece) + 2 <= width:  # 2: room for the " \\" if a line follows
            lines[-1] += " " + piece
        else:
            lines.append("  " + piece)
    return " \\\n".join(lines)


def guarded(output: OutputFormat, action: Callable[[], Any], *, try_: str | None = None) -> Any:
    """`action()`, or exit with the one-line report of an expected error (exit code from
    errors.exit_code_for): ours, or the ASL engine's (a definition `definitions run` refuses is the
    user's to fix, not a bug). `try_` is the command to suggest."""
    try:
        return action()
    except (EmbeddingIngestError, AslError) as error:
        raise fail(error, output, try_=try_) from error
