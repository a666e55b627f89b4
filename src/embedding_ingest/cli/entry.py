"""The command line's outer edge: no expected error prints a traceback (one line, exit 1; a
configuration error exits 2). `--debug` or EMBEDDING_INGEST_DEBUG=1 shows the traceback too. (Enum
options match case-insensitively by their own `case_sensitive=False`.)"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import typer

from embedding_ingest.cli import query
from embedding_ingest.cli.output import EXIT_CONFIGURATION, OutputFormat, debugging, emit_json, stderr
from embedding_ingest.cli.query import QueryError, add_query_options
from embedding_ingest.exceptions import ConfigurationError, EmbeddingIngestError

EXIT_INTERRUPTED = 130


def _wants_json(argv: list[str]) -> bool:
    pairs = zip(argv, argv[1:], strict=False)
    return any(a in ("--output", "-o") and b.lower() == "json" for a, b in pairs) or any(
        a.lower() == "--output=json" for a in argv)


def report_unhandled(error: BaseException, argv: list[str]) -> int:
    """Print an error that escaped a command as one line (JSON on stdout under --output json) and
    return the exit code."""
    if debugging():
        traceback.print_exception(error, file=sys.stderr)
    if isinstance(error, KeyboardInterrupt):
        stderr.print("interrupted", highlight=False)
        return EXIT_INTERRUPTED
    expected = isinstance(error, EmbeddingIngestError)
    kind = type(error).__name__
    message = str(error) if expected else f"unexpected {kind}: {error}"
    if not expected and not debugging():
        message += " (run with --debug for the traceback)"
    if _wants_json(argv):
        emit_json({"error": kind, "message": message, "transient": bool(getattr(error, "transient", False))})
    else:
        stderr.print(f"{kind if expected else 'error'}: {message}", markup=False, highlight=False,
                     soft_wrap=True)
    return EXIT_CONFIGURATION if isinstance(error, (ConfigurationError, QueryError)) else 1


class CliApp(typer.Typer):
    """A Typer app that runs its commands behind `report_unhandled`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        add_query_options(self)
        command = typer.main.get_command(self)
        argv = list(kwargs.get("args") or sys.argv[1:])
        query.ARGV[:] = argv
        try:
            return command(*args, **kwargs)
        except SystemExit:
            raise
        except BaseException as error:  # noqa: BLE001 - the outermost edge: report, never a traceback
            sys.exit(report_unhandled(error, argv))


__all__ = ["CliApp", "OutputFormat", "report_unhandled"]
