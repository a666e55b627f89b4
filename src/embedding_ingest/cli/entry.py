"""The command line's outer edge (`CliApp`, `CliGroup`): every
error that ends a command is one line, `error: WHAT (WHY); try: COMMAND`, with the exit code of
errors.exit_code_for (usage errors from click included); Ctrl-C prints one line saying what stopped
and how to resume (interrupts.py); never a traceback (`--debug` or EMBEDDING_INGEST_DEBUG=1 shows it).
`--help` is plain text that reflows at any width, flags without a `<bool>`, and the commands listed
in the order of the job (`Panel`)."""

from __future__ import annotations

import shlex
import sys
import traceback
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import typer
from typer import _click  # Typer 0.29 ships its own click; pinned in pyproject, tested per error kind
from typer.core import TyperGroup

from embedding_ingest.cli import interrupts, output, query
from embedding_ingest.cli.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    error_line,
    exit_code_for,
    usage_message,
)
from embedding_ingest.cli.help_text import plain_help
from embedding_ingest.cli.output import debugging, emit_json, print_error, stderr
from embedding_ingest.cli.query import add_query_options
from embedding_ingest.exceptions import EmbeddingIngestError

PROGRAM = interrupts.PROGRAM


class Panel(StrEnum):
    """Where a command is listed in `--help`, in the order of the job. Pass as
    `app.command(..., rich_help_panel=Panel.RUN)` (or `add_typer(..., rich_help_panel=...)`)."""

    DATA = "Get data in"
    RUN = "Run the workflows"
    USE = "Use what is published"
    MONITOR = "Monitor"
    SETUP = "Definitions and deployment"


# Within a panel, commands listed here come in this order; others follow in registration order.
ORDER = ("receipts", "submit", "start-execution", "schedule", "demo", "query", "snapshots", "status",
         "list-executions", "describe-execution", "get-execution-history", "batches", "console")


# Options every command has (--query comes with --output, cli/query.py), accepted before the command
# too (`embedding-ingest --output json status`), and the top-level options that take a value.
_COMMAND_OPTIONS = ("--output", "-o", "--query")
_TOP_OPTIONS_WITH_VALUE = ("--home", "--region")


def options_after_the_command(argv: Sequence[str]) -> list[str]:
    """`argv` with a command's own options written before the command (`--output json status`, which
    click would refuse: 'no such option: --output (Possible options: --utc)') moved to its end, or
    before its `--` (after which everything is an argument), where the command reads them; anything
    else unchanged."""
    before: list[str] = []
    moved: list[str] = []
    index = 0
    while index < len(argv) and argv[index].startswith("-") and argv[index] != "--":
        name = argv[index].split("=", 1)[0]
        joined = "=" in argv[index] or (name not in ("--output", "--query") and len(name) > 2
                                         and not name.startswith("--"))  # -ojson
        takes = 1 if joined else 2
        if name in _COMMAND_OPTIONS or (name.startswith("-o") and not name.startswith("--")):
            moved += argv[index:index + takes]
        else:
            takes = 2 if name in _TOP_OPTIONS_WITH_VALUE and "=" not in argv[index] else 1
            before += argv[index:index + takes]
        index += takes
    if not moved:
        return list(argv)
    rest = list(argv[index:])
    end = rest.index("--") if "--" in rest else len(rest)
    return [*before, *rest[:end], *moved, *rest[end:]]


def _wants_json(argv: Sequence[str]) -> bool:
    pairs = zip(argv, argv[1:], strict=False)
    return any(a in ("--output", "-o") and b.lower() == "json" for a, b in pairs) or any(
        a.lower() == "--output=json" for a in argv)


def report_unhandled(error: BaseException, argv: list[str]) -> int:
    """Print an error that escaped a command as one line (JSON on stdout under --output json) and
    return the exit code."""
    if debugging():
        traceback.print_exception(error, file=sys.stderr)
    expected = isinstance(error, EmbeddingIngestError)
    if expected:
        message, try_ = str(error), getattr(error, "try_", None)
    else:
        message = f"unexpected {type(error).__name__}: {error}"
        try_ = None if debugging() else shlex.join([PROGRAM, "--debug", *argv]) + "   (for the traceback)"
    print_error(error, message, try_, as_json=_wants_json(argv))
    return exit_code_for(error) if expected else EXIT_FAILED


def _usage_error(error: _click.exceptions.UsageError, argv: list[str]) -> int:
    path = error.ctx.command_path if error.ctx is not None else PROGRAM
    message = usage_message(error.format_message())
    if (isinstance(error, _click.exceptions.NoSuchOption) and path == PROGRAM
            and error.option_name.split("=", 1)[0] in _COMMAND_OPTIONS):  # given with no command at all
        message = f"no such option: {error.option_name} (each command takes it: {PROGRAM} COMMAND " \
                  f"{error.option_name} ...)"
    if _wants_json(argv):
        emit_json({"error": "UsageError", "message": message, "try": f"{path} --help", "transient": False})
    else:
        output.error_out(error_line(message, f"{path} --help"))
    return EXIT_USAGE


class CliGroup(TyperGroup):
    """The top-level click group: one-line errors and exit codes for everything a command can end with
    (usage errors included, which Typer would print as a boxed, multi-line block), and `--help` with
    the commands in sections (`Panel`), in the order of the job; argument and value names as a reader
    expects them (help_text.plain_help)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        plain_help(self)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        argv = options_after_the_command(sys.argv[1:] if args is None else args)
        interrupts.install()
        interrupts.reset()
        output.invocation[:] = argv
        query.ARGV[:] = argv  # --query and --output text read it (cli/query.py)
        try:
            result = super().main(args=argv, prog_name=prog_name or PROGRAM, complete_var=complete_var,
                                  standalone_mode=False, **extra)
            code = result if isinstance(result, int) else 0
        except _click.exceptions.NoArgsIsHelpError as error:
            error.show()
            code = EXIT_USAGE
        except _click.exceptions.UsageError as error:
            code = _usage_error(error, argv)
        except _click.exceptions.ClickException as error:  # e.g. a file click could not open
            output.error_out(error_line(usage_message(error.format_message()), None))
            code = error.exit_code
        except typer.Abort:
            stderr.print("error: aborted", markup=False, highlight=False)
            code = EXIT_FAILED
        except (interrupts.Interrupted, KeyboardInterrupt) as stop:
            # A terminal has just echoed ^C where the cursor was: start a line of our own. Without a
            # terminal nothing was echoed, and an empty line would only stand out.
            fresh_line = "\n" if stderr.is_terminal else ""
            by = getattr(stop, "by", "Ctrl-C")
            stderr.print(fresh_line + interrupts.interrupted_line(argv, by), markup=False, highlight=False,
                         soft_wrap=True)
            if _wants_json(argv):  # a program reading stdout gets a document to parse, not nothing
                emit_json(interrupts.interrupted_document(argv, by))
            code = EXIT_INTERRUPTED
        except SystemExit:
            raise
        except BaseException as error:  # noqa: BLE001 - the outermost edge: report, never a traceback
            code = report_unhandled(error, argv)
        if standalone_mode:
            sys.exit(code)
        return code

    def format_commands(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        listed = [(name, command) for name in self.list_commands(ctx)
                  if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if not listed:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in listed)
        sections: dict[str, list[tuple[str, str]]] = {panel.value: [] for panel in Panel}
        rank = {name: index for index, name in enumerate(ORDER)}
        for name, command in sorted(listed, key=lambda pair: rank.get(pair[0], len(ORDER))):
            panel = getattr(command, "rich_help_panel", None) or "Other"
            sections.setdefault(panel, []).append((name, command.get_short_help_str(limit)))
        for title, rows in sections.items():
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class CliApp(typer.Typer):
    """The `embedding-ingest` app: plain help (no `<bool>` on flags, text reflowed at any width),
    `CliGroup` at the top, enum options in any case."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", CliGroup)
        kwargs.setdefault("rich_markup_mode", None)
        super().__init__(**kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        add_query_options(self)  # every command with --output gets --query (cli/query.py)
        return typer.main.get_command(self)(*args, **kwargs)


__all__ = ["CliApp", "CliGroup", "Panel", "report_unhandled"]
