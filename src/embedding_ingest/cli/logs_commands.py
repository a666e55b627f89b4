"""`logs filter-log-events`: the functions' logs, as `aws logs filter-log-events` reads them.

Locally from the workspace's log store (every local invocation's lines, pipeline/function_logs.py),
with `--backend aws` from CloudWatch Logs. Options and output are the AWS CLI's: `--log-group-name`,
`--filter-pattern` (CloudWatch's syntax, stores/log_filter.py), `--max-items` (then `NextToken`, for
`--starting-token`), `--start-time`/`--end-time` (ms since the epoch, or an ISO-8601 time),
`--log-stream-names`, `--log-stream-name-prefix`; `--output json` (and `--query`) print
FilterLogEvents' response. The default output is one line per event (time, then the message as
logged), so `| grep` works on it as on the AWS CLI's JSON.
"""

from __future__ import annotations

import shlex
import sys
from datetime import UTC, datetime
from typing import Any

import typer

from embedding_ingest.cli import workspace
from embedding_ingest.cli.entry import Panel
from embedding_ingest.cli.errors import CliError
from embedding_ingest.cli.output import (
    EXIT_CONFIGURATION,
    OutputFormat,
    OutputOption,
    emit,
    fail,
    guarded,
    hint,
    say,
    table,
    when,
)
from embedding_ingest.cli.run_commands import Backend, BackendOption
from embedding_ingest.exceptions import EmbeddingIngestError, InvalidInputError
from embedding_ingest.stores.log_store import ResourceNotFoundException

logs_app = typer.Typer(help="The functions' logs (CloudWatch Logs on AWS, the workspace's log store "
                            "locally).", no_args_is_help=True)


def _epoch_ms(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"{option} {value!r}: give milliseconds since the epoch "
                                "(1482197400000) or an ISO-8601 time (2026-12-07T10:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _candidate_groups() -> list[str]:
    """The groups our functions log to (or will, once they run): names for the not-found hint."""
    from embedding_ingest.pipeline.definitions import FUNCTION_NAMES
    from embedding_ingest.stores.log_store import log_group_name

    return [log_group_name(name, workspace.settings().stage) for name in FUNCTION_NAMES]


def _events_lines(result: dict[str, Any]) -> list[Any]:
    """One line per event, never wrapped (a pipe to grep sees each message whole)."""
    for event in result["events"]:
        sys.stdout.write(f"{when(event['timestamp'] / 1000)}  {event['message']}\n")
    return []


def _from_cloudwatch(group: str, query: dict[str, Any], max_items: int | None,
                     starting_token: str | None) -> dict[str, Any]:
    from embedding_ingest import backends
    from embedding_ingest.stores.cloudwatch_logs import filter_log_events as cloudwatch

    client = backends.aws_client("logs", workspace.settings())
    return cloudwatch(client, group, **query, max_items=max_items, starting_token=starting_token)


def _from_store(group: str, query: dict[str, Any], max_items: int | None,
                starting_token: str | None) -> dict[str, Any]:
    from embedding_ingest.pipeline.function_logs import log_store

    page = log_store(workspace.settings()).filter_log_events(
        group, **query, limit=max_items, next_token=starting_token, candidates=_candidate_groups())
    result = {key: value for key, value in page.items() if key != "nextToken"}
    if page.get("nextToken"):
        result["NextToken"] = page["nextToken"]  # the AWS CLI's name for its --max-items token
    return result


@logs_app.command("filter-log-events")
def filter_log_events(
        log_group_name: str = typer.Option(..., "--log-group-name", help="/aws/lambda/FUNCTION-STAGE"),
        filter_pattern: str = typer.Option(None, "--filter-pattern",
                                           help="CloudWatch filter pattern: terms, \"phrases\", ?any, -not, "
                                                "{ $.batch_id = \"x\" }, %%regex%%"),
        max_items: int = typer.Option(None, "--max-items", min=1, help="At most N events; NextToken goes on"),
        starting_token: str = typer.Option(None, "--starting-token", help="The NextToken of the last call"),
        start_time: str = typer.Option(None, "--start-time", help="Epoch ms or ISO-8601, inclusive"),
        end_time: str = typer.Option(None, "--end-time", help="Epoch ms or ISO-8601, inclusive"),
        log_stream_names: list[str] = typer.Option(None, "--log-stream-names", help="Only these streams"),
        log_stream_name_prefix: str = typer.Option(None, "--log-stream-name-prefix",
                                                   help="Only streams whose name starts with this"),
        backend: Backend = BackendOption,
        output: OutputFormat = OutputOption) -> None:
    """Log events of a function's log group that match a filter pattern, oldest first."""
    if backend is not Backend.AWS:  # it reads the log store, not the ports that refuse a missing workspace
        guarded(output, workspace.require_workspace)
    try:
        times = {"start_time": _epoch_ms(start_time, "--start-time"),
                 "end_time": _epoch_ms(end_time, "--end-time")}
        query = {"filter_pattern": filter_pattern, **times, "stream_names": log_stream_names,
                 "stream_prefix": log_stream_name_prefix}
        result = (_from_cloudwatch(log_group_name, query, max_items, starting_token) if backend is Backend.AWS
                  else _from_store(log_group_name, query, max_items, starting_token))
    except ResourceNotFoundException as error:  # AWS's error code kept in the line, as the AWS CLI says it
        suggested = (f"embedding-ingest logs filter-log-events --log-group-name {error.suggestion}"
                     if error.suggestion else "embedding-ingest logs filter-log-events --help")
        raise fail(CliError(f"{error} (ResourceNotFoundException)", try_=suggested,
                            name="ResourceNotFoundException"), output, EXIT_CONFIGURATION) from error
    except InvalidInputError as error:  # a bad pattern, time or token
        raise fail(error, output, EXIT_CONFIGURATION) from error
    except EmbeddingIngestError as error:  # CloudWatch Logs failed
        raise fail(error, output) from error
    emit(result, output, _events_lines)
    if result.get("NextToken"):
        hint(output, f"embedding-ingest logs filter-log-events --log-group-name {log_group_name} "
                     f"--starting-token {result['NextToken']}"
                     + (f" --max-items {max_items}" if max_items else ""))
    elif not result["events"]:
        _nothing_matched(output, log_group_name, backend,
                         narrowed=any(v for v in (filter_pattern, start_time, end_time, log_stream_names,
                                                  log_stream_name_prefix)))


def _nothing_matched(output: OutputFormat, group: str, backend: Backend, *, narrowed: bool) -> None:
    """No event: say so, and the `next:` is a command that runs: the whole group (without the filters
    that left nothing), or, when nothing narrowed it, the groups there are."""
    if output is OutputFormat.JSON:
        return
    on_aws = ["--backend", "aws"] if backend is Backend.AWS else []
    if narrowed:
        say(f"no events in {group} match the filter pattern, times or streams given; without them:")
        hint(output, shlex.join(["embedding-ingest", "logs", "filter-log-events", "--log-group-name", group,
                                 *on_aws]))
    else:
        say(f"no events in {group}")
        hint(output, shlex.join(["embedding-ingest", "logs", "describe-log-groups", *on_aws]))


@logs_app.command("describe-log-groups")
def describe_log_groups(backend: Backend = BackendOption, output: OutputFormat = OutputOption) -> None:
    """The log groups there are (locally: those the functions have written to)."""
    if backend is Backend.AWS:
        from embedding_ingest import backends

        client = guarded(output, lambda: backends.aws_client("logs", workspace.settings()))
        pages = client.get_paginator("describe_log_groups").paginate(logGroupNamePrefix="/aws/lambda/")
        groups = guarded(output, lambda: [{"logGroupName": g["logGroupName"]} for page in pages
                                          for g in page.get("logGroups", [])])
    else:
        from embedding_ingest.pipeline.function_logs import log_store

        guarded(output, workspace.require_workspace)
        groups = [{"logGroupName": name} for name in log_store(workspace.settings()).groups()]
    emit({"logGroups": groups}, output,
         lambda r: table(f"{len(r['logGroups'])} log groups", ["logGroupName"],
                         [[g["logGroupName"]] for g in r["logGroups"]]))
    if not groups and output is not OutputFormat.JSON:
        say("no function has logged yet")
        hint(output, "embedding-ingest start-execution line" + (" --backend aws" if backend is Backend.AWS
                                                                 else ""))


def register(app: typer.Typer) -> None:
    app.add_typer(logs_app, name="logs", rich_help_panel=Panel.MONITOR,
                  short_help="Function logs, as `aws logs filter-log-events` shows them.")
