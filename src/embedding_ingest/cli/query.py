"""`--query` on every command that prints JSON, and `--output text`, as the AWS CLI does them.

The AWS CLI applies the JMESPath expression to the whole response, before formatting
(awscli/formatter.py: the paginated result is built, then `query.search`, then printed), and prints
JSON when no `--output` is given (its default format). Here the same: the expression (jmespath, the
library botocore uses) runs on the command's JSON document; `--query` without `--output` prints JSON;
`--output text` prints scalars and lists as the AWS CLI's text format does (one value per line for a
list of values, tab-separated fields for a list of lists or objects), so
`--query executionArn --output text` gives the bare ARN. `--query` with `--output table` shows the
result in a generic table.

`add_query_options` adds `--query` to every command with an `--output` option (wrapping its callback
before typer builds the command line): no command declares it.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jmespath
import typer
from jmespath.exceptions import JMESPathError
from rich.table import Table

from embedding_ingest.cli.formats import OutputFormat
from embedding_ingest.exceptions import InvalidInputError

QUERY_HELP = ("A JMESPath query on the JSON output, as the AWS CLI's --query (JSON unless --output is "
              "given)")
_active: contextvars.ContextVar[Any] = contextvars.ContextVar("query", default=None)


class QueryError(InvalidInputError):
    """A --query that is no JMESPath expression (the AWS CLI: 'Bad value for --query')."""


def compile_query(text: str) -> Any:
    """The compiled expression; raises QueryError saying where it is wrong."""
    try:
        return jmespath.compile(text)
    except JMESPathError as exc:
        raise QueryError(f"Bad value for --query {text}: {str(exc).splitlines()[0]}") from None


@contextmanager
def querying(expression: Any) -> Iterator[None]:
    token = _active.set(expression)
    try:
        yield
    finally:
        _active.reset(token)


def active() -> bool:
    """Whether the running command was given --query."""
    return _active.get() is not None


def apply(value: Any) -> Any:
    """`value` (already JSON data) filtered by the running command's --query (unchanged without one).
    Raises QueryError for an expression jmespath cannot evaluate on it (`contains(null, 'x')`)."""
    expression = _active.get()
    if expression is None:
        return value
    try:
        return expression.search(value)
    except JMESPathError as exc:
        raise QueryError(f"Bad value for --query {expression.expression}: {exc}") from None


def _text_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return "None"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def to_text(value: Any) -> str:
    """The AWS CLI's text format of a JSON value: a scalar as it is; a list of scalars tab-separated on
    one line; a list of objects or lists one line each (an object's scalar values in key order)."""
    if not isinstance(value, (dict, list)):
        return _text_scalar(value)
    if isinstance(value, dict):
        return "\t".join(_text_scalar(value[key]) for key in sorted(value)
                         if not isinstance(value[key], (dict, list)))
    if all(not isinstance(item, (dict, list)) for item in value):
        return "\t".join(_text_scalar(item) for item in value)
    return "\n".join(to_text(item) for item in value)


def generic_table(value: Any) -> Any:
    """A table of whatever JSON a query returned: objects as rows of their keys, values as one column."""
    if not isinstance(value, (dict, list)):
        return _text_scalar(value)
    rows = value if isinstance(value, list) else [value]
    if all(isinstance(row, dict) for row in rows):
        columns = list(dict.fromkeys(key for row in rows for key in row))
        table = Table(show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*("" if row.get(c) is None else _text_scalar(row.get(c)) for c in columns))
        return table
    table = Table(show_header=False)
    table.add_column("value", overflow="fold")
    for row in rows:
        table.add_row(_text_scalar(row))
    return table


# The command line being run (set by entry.CliApp): whether --output was given is read from it.
ARGV: list[str] = []


def _output_given(argv: list[str]) -> bool:
    return any(arg in ("--output", "-o") or arg.startswith("--output=")
               or (arg.startswith("-o") and not arg.startswith("--")) for arg in argv)


def _with_query(callback: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(callback, eval_str=True)
    if "output" not in signature.parameters or getattr(callback, "takes_query", False):
        return callback

    @functools.wraps(callback)
    def run(*args: Any, query: str | None = None, **kwargs: Any) -> Any:
        if query is None:
            return callback(*args, **kwargs)
        expression = compile_query(query)
        if not _output_given(ARGV):
            kwargs["output"] = OutputFormat.JSON  # the AWS CLI's default format
        with querying(expression):
            return callback(*args, **kwargs)

    option = inspect.Parameter("query", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                               default=typer.Option(None, "--query", metavar="JMESPATH", help=QUERY_HELP))
    parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()]
    run.__signature__ = signature.replace(parameters=[*parameters, option])  # type: ignore[attr-defined]
    run.takes_query = True  # type: ignore[attr-defined]
    return run


def add_query_options(app: typer.Typer) -> None:
    """Give every command of `app` (and its groups) that has an `output` parameter a `--query` option.
    Idempotent; run before the click command is built."""
    for command in app.registered_commands:
        if command.callback is not None:
            command.callback = _with_query(command.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            add_query_options(group.typer_instance)
