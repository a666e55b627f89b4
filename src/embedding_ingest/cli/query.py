"""`--query` on every command that prints JSON, and `--output text`, as the AWS CLI does them.

The AWS CLI applies the JMESPath expression to the whole response, before formatting
(awscli/formatter.py: the paginated result is built, then `query.search`, then printed), and prints
JSON when no `--output` is given (its default format). Here the same: the expression (jmespath, the
library botocore uses) runs on the command's JSON document; `--query` without `--output` prints JSON;
`--output text` prints the AWS CLI's text format (text_lines: one tab-separated line per object, a
list of objects under a key one `KEY<TAB>...` line per item), so `--query executionArn --output text`
gives the bare ARN and `list-executions --output text` one `EXECUTIONS` line per execution.
`--query` with `--output table` shows the result in a generic table.

`add_query_options` adds `--query` to every command with an `--output` option (wrapping its callback
before typer builds the command line): no command declares it.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jmespath
import typer
from jmespath.exceptions import IncompleteExpressionError, JMESPathError, LexerError, ParseError
from rich.table import Table

from embedding_ingest.cli.formats import OutputFormat
from embedding_ingest.exceptions import InvalidInputError

QUERY_HELP = ("A JMESPath query on the JSON output, as the AWS CLI's --query (JSON unless --output is "
              "given)")
_active: contextvars.ContextVar[Any] = contextvars.ContextVar("query", default=None)


class QueryError(InvalidInputError):
    """A --query that is no JMESPath expression, or one jmespath cannot evaluate on the document (the
    AWS CLI: 'Bad value for --query'): `bad value for --query 'EXPR' (WHAT, at character N)`, and the
    command to see the document it selects from."""

    def __init__(self, expression: str, problem: str) -> None:
        super().__init__(f"bad value for --query {expression!r} ({problem})")
        self.try_ = f"{_without_query(ARGV)}   (the document --query selects from; syntax: jmespath.org)"


def _problem(exc: JMESPathError) -> str:
    """What jmespath found wrong, in a few words, with the (1-based) character where it did."""
    if isinstance(exc, IncompleteExpressionError):
        return "incomplete expression: something is missing at its end"
    if isinstance(exc, ParseError):
        at = f", at character {exc.lex_position + 1}" if isinstance(exc.lex_position, int) else ""
        if isinstance(exc, LexerError):
            what = exc.message  # "Unclosed ` delimiter"
        else:
            what = exc.msg if exc.token_value is None else f"unexpected {exc.token_value!r}"
        return f"{what[:1].lower()}{what[1:]}{at}"
    first = " ".join(str(exc).split())
    return first[:1].lower() + first[1:]


def _without_query(argv: list[str]) -> str:
    """`embedding-ingest ARGS --output json`: the running command line without its --query and
    --output (and their values)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--query", "--output", "-o"):
            skip = True
        elif not arg.startswith(("--query=", "--output=")) and not (arg.startswith("-o") and len(arg) > 2
                                                                   and not arg.startswith("--")):
            kept.append(arg)
    return shlex.join(["embedding-ingest", *kept, "--output", "json"])


def compile_query(text: str) -> Any:
    """The compiled expression; raises QueryError saying what is wrong and where."""
    try:
        return jmespath.compile(text)
    except JMESPathError as exc:
        raise QueryError(text, _problem(exc)) from None


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
        raise QueryError(expression.expression, _problem(exc)) from None


def _text_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return "None"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def text_lines(value: Any, label: str | None = None, keys: list[str] | None = None) -> Iterator[str]:
    """The AWS CLI's text format of a JSON value (awscli/text.py's rules), line by line:
    - a scalar: itself (`None`, `True` as Python prints them);
    - an object: its scalar values tab-separated in key order (after LABEL, the upper-cased key that
      held it, when inside another object), then each list or object it holds, under its key as label;
    - a list of objects: one line per object, with the scalar keys of all of them (a missing one
      empty), so that columns line up;
    - a list of scalars: one tab-separated line at the top, else one `LABEL<TAB>value` line per value;
    - an empty list: nothing.
    So `{"executions": [{...}, {...}]}` gives one `EXECUTIONS<TAB>...` line per execution."""
    if isinstance(value, dict):
        present = keys if keys is not None else sorted(k for k, v in value.items() if _scalar(v))
        scalars = [_text_scalar(value.get(key, "")) for key in present]
        if scalars:
            yield "\t".join([label.upper(), *scalars] if label is not None else scalars)
        for key in sorted(set(value) - set(present)):
            yield from text_lines(value[key], key)
    elif isinstance(value, list):
        if any(isinstance(item, dict) for item in value):
            columns = sorted({k for item in value if isinstance(item, dict)
                              for k, v in item.items() if _scalar(v)})
            for item in value:
                yield from text_lines(item, label, columns if isinstance(item, dict) else None)
            return
        scalars = [item for item in value if _scalar(item)]
        if scalars and label is not None:
            yield from (f"{label.upper()}\t{_text_scalar(item)}" for item in scalars)
        elif scalars:
            yield "\t".join(_text_scalar(item) for item in scalars)
        for item in value:
            if not _scalar(item):
                yield from text_lines(item, label)
    else:
        yield _text_scalar(value)


def to_text(value: Any) -> str:
    """`value` in the AWS CLI's text format (text_lines), each line ending in a newline; "" for an empty
    list (the AWS CLI prints nothing)."""
    return "".join(line + "\n" for line in text_lines(value))


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
