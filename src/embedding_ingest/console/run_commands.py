"""The reference's Quick Start verbs, run against the local engine: start/describe/history/list."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import typer
from rich.live import Live
from rich.table import Table

from embedding_ingest.console import context
from embedding_ingest.console.output import OutputFormat, OutputOption, emit, guarded, stderr, table
from embedding_ingest.stores.records import ExecutionStatus, ItemKind

EXIT_EXECUTION_FAILED = 4


class Backend(StrEnum):
    LOCAL = "local"
    AWS = "aws"


BackendOption = typer.Option(Backend.LOCAL, "--backend",
                             help="local engine (default) or aws (the deployed state machines)")


def _aws():
    from embedding_ingest import runtime
    from embedding_ingest.aws.stepfunctions import StepFunctionsBackend

    return StepFunctionsBackend(runtime.aws_client("stepfunctions", context.settings()))


def _aws_find(backend, name: str, workflow: ItemKind | None, action):
    """Run `action(workflow)` for the given workflow, or the first of line/word that knows `name`."""
    from embedding_ingest.exceptions import InvalidInputError

    candidates = [workflow] if workflow else list(ItemKind)
    for index, kind in enumerate(candidates):
        try:
            return action(kind.value)
        except InvalidInputError:
            if index == len(candidates) - 1:
                raise
    raise AssertionError("unreachable")


class StageBoard:
    """Live per-stage counts (started / done / failed) while an execution runs."""

    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = {}

    def __call__(self, stage: str, outcome: str, _result: Any) -> None:
        row = self.rows.setdefault(stage, [0, 0, 0])
        row[{"started": 0, "succeeded": 1, "failed": 2}[outcome]] += 1

    def render(self) -> Table:
        return table("Execution progress", ["stage", "started", "succeeded", "failed"],
                     [[stage, *counts] for stage, counts in self.rows.items()])


def start_execution(workflow: ItemKind = typer.Argument(..., help="line or word"),
                    name: str = typer.Option(None, "--name", help="Execution name (= the run's batch_id)"),
                    backend: Backend = BackendOption,
                    wait: bool = typer.Option(True, "--wait/--no-wait",
                                              help="aws: wait for the execution to end"),
                    output: OutputFormat = OutputOption) -> None:
    """Run a workflow to completion (on the local engine, or on AWS with --backend aws)."""
    from embedding_ingest.orchestration import new_execution_name, run_workflow
    from embedding_ingest.workflow.history import to_describe_execution

    if backend is Backend.AWS:
        run_name = name or new_execution_name(workflow)
        described = guarded(output, lambda: _aws().start(workflow.value, run_name, wait=wait))
        emit(described, output, _describe_table)
        if described["status"] not in ("SUCCEEDED", "RUNNING"):
            raise typer.Exit(EXIT_EXECUTION_FAILED)
        return

    board = StageBoard()
    if output is OutputFormat.JSON or not stderr.is_terminal:
        record = guarded(output, lambda: run_workflow(workflow, context.settings(), name=name,
                                                      observer=board))
    else:
        with Live(board.render(), console=stderr, refresh_per_second=4) as live:
            def observe(stage: str, outcome: str, result: Any) -> None:
                board(stage, outcome, result)
                live.update(board.render())

            record = guarded(output, lambda: run_workflow(workflow, context.settings(), name=name,
                                                          observer=observe))
    described = to_describe_execution(record)
    emit(described, output, lambda d: _describe_table(d))
    if record.status is not ExecutionStatus.SUCCEEDED:
        raise typer.Exit(EXIT_EXECUTION_FAILED)


def _describe_table(described: dict[str, Any]) -> Table:
    rows = [["name", described.get("name")], ["status", described.get("status")],
            ["startDate", described.get("startDate")], ["stopDate", described.get("stopDate")]]
    if described.get("error"):
        rows += [["error", described["error"]], ["cause", described.get("cause")]]
    out = json.loads(described.get("output") or "{}") if described.get("status") == "SUCCEEDED" else {}
    final = (out or {}).get("final_merge_result") or {}
    if final:
        rows += [["published version", final.get("snapshot_version")],
                 ["embeddings in snapshot", final.get("total_embeddings")],
                 ["embeddings added", final.get("added_embeddings")]]
    marked = (out or {}).get("mark_complete_result") or {}
    if marked:
        rows += [["batches marked complete", marked.get("batches_marked")]]
    return table(described.get("executionArn", ""), ["field", "value"], rows)


def describe_execution(name: str = typer.Argument(..., help="Execution name or ARN"),
                       backend: Backend = BackendOption,
                       workflow: ItemKind = typer.Option(None, "--workflow", help="line or word (aws)"),
                       output: OutputFormat = OutputOption) -> None:
    """Status, input and output of an execution (DescribeExecution shape)."""
    from embedding_ingest.workflow.history import to_describe_execution

    if backend is Backend.AWS:
        aws = guarded(output, _aws)
        emit(guarded(output, lambda: _aws_find(aws, name, workflow, lambda w: aws.describe(name, w))),
             output, _describe_table)
        return

    record = context.ledger().get_execution(name)
    if record is None:
        emit({"error": "ExecutionDoesNotExist", "message": f"no execution named {name!r}"}, output,
             lambda r: r["message"])
        raise typer.Exit(1)
    emit(to_describe_execution(record), output, _describe_table)


def get_execution_history(name: str = typer.Argument(..., help="Execution name or ARN"),
                          max_results: int = typer.Option(None, "--max-results", min=1),
                          reverse_order: bool = typer.Option(False, "--reverse-order"),
                          failed_only: bool = typer.Option(False, "--failed-only",
                                                           help="Only *Failed events"),
                          backend: Backend = BackendOption,
                          workflow: ItemKind = typer.Option(None, "--workflow", help="line or word (aws)"),
                          output: OutputFormat = OutputOption) -> None:
    """History events of an execution (GetExecutionHistory shape)."""
    from embedding_ingest.workflow.history import to_aws_history

    if backend is Backend.AWS:
        aws = guarded(output, _aws)
        events = guarded(output, lambda: _aws_find(aws, name, workflow, lambda w: aws.history(name, w)))
    else:
        ledger = context.ledger()
        record = ledger.get_execution(name)
        if record is None:
            emit({"error": "ExecutionDoesNotExist", "message": f"no execution named {name!r}"}, output,
                 lambda r: r["message"])
            raise typer.Exit(1)
        events = to_aws_history(ledger.get_events(record.execution_arn))["events"]
    if failed_only:
        events = [e for e in events if e["type"].endswith("Failed")]
    if reverse_order:
        events = events[::-1]
    if max_results:
        events = events[:max_results]

    def summary(event: dict[str, Any]) -> tuple[str, str]:
        details = next((v for k, v in event.items() if k.endswith("EventDetails")), {}) or {}
        return (details.get("name") or details.get("resource") or "",
                details.get("error") or "")

    emit({"events": events}, output,
         lambda r: table(f"{len(r['events'])} events of {name}",
                         ["id", "prev", "type", "name", "error"],
                         [[e["id"], e.get("previousEventId"), e["type"], *summary(e)] for e in r["events"]]))


def list_executions(workflow: ItemKind = typer.Option(None, "--workflow", help="line or word"),
                    status: ExecutionStatus = typer.Option(None, "--status"),
                    max_results: int = typer.Option(None, "--max-results", min=1),
                    backend: Backend = BackendOption,
                    output: OutputFormat = OutputOption) -> None:
    """Executions, newest first (ListExecutions shape)."""
    from embedding_ingest.workflow.history import to_describe_execution

    if backend is Backend.AWS:
        aws = guarded(output, _aws)
        kinds = [workflow] if workflow else list(ItemKind)
        executions = guarded(output, lambda: sorted(
            (e for kind in kinds for e in aws.list(kind.value, status=status.value if status else None,
                                                     max_results=max_results)),
            key=lambda e: e.get("startDate") or 0, reverse=True))[:max_results]
    else:
        records = context.ledger().list_executions(workflow=workflow.value if workflow else None,
                                                   status=status, limit=max_results)
        executions = [{k: v for k, v in to_describe_execution(r).items() if k not in ("input", "output")}
                      for r in records]
    emit({"executions": executions}, output,
         lambda r: table("Executions", ["name", "status", "startDate", "stopDate", "error"],
                         [[e["name"], e["status"], e.get("startDate"), e.get("stopDate"), e.get("error")]
                          for e in r["executions"]]))


def register(app: typer.Typer) -> None:
    app.command("start-execution")(start_execution)
    app.command("describe-execution")(describe_execution)
    app.command("get-execution-history")(get_execution_history)
    app.command("list-executions")(list_executions)
