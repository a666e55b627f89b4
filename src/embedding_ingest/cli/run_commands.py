"""The reference's Quick Start verbs, run against the local engine: start/describe/history/list."""

from __future__ import annotations

import shlex
from enum import StrEnum
from typing import Any

import typer
from rich.console import RenderableType
from rich.live import Live

from embedding_ingest.cli import interrupts, next_steps, workspace
from embedding_ingest.cli.arn_options import (
    ExecutionArnOption,
    ExecutionDoesNotExist,
    StateMachineArnOption,
    execution_from,
    given,
    workflow_from,
    workflow_of_execution_arn,
)
from embedding_ingest.cli.entry import Panel
from embedding_ingest.cli.errors import EXIT_EXECUTION_FAILED, EXIT_USAGE, CliError
from embedding_ingest.cli.execution_views import (
    describe_table,
    executions_table,
    failed_events,
    history_table,
    idle_tables,
    page_offset,
    page_token,
)
from embedding_ingest.cli.output import (
    OutputFormat,
    OutputOption,
    counted,
    emit,
    fail,
    guarded,
    hint,
    say,
    stderr,
)
from embedding_ingest.cli.tables import Column, fitted
from embedding_ingest.stores.records import ExecutionStatus, ItemKind


class Backend(StrEnum):
    LOCAL = "local"
    AWS = "aws"


BackendOption = typer.Option(Backend.LOCAL, "--backend", case_sensitive=False, metavar="BACKEND",
                             help="local engine (default) or aws (the deployed state machines)")
WorkflowOption = typer.Option(None, "--workflow", case_sensitive=False, metavar="KIND",
                              help="line or word (aws: which state machine; default: both)")


def _aws(state_machine_arn: str | None = None, workflow: ItemKind | None = None):
    """The Step Functions backend (with the state machine ARN given for `workflow`, if any);
    ConfigurationError (exit 2) when no AWS region is configured."""
    from embedding_ingest import backends
    from embedding_ingest.aws.stepfunctions import StepFunctionsBackend

    arns = {workflow.value: state_machine_arn} if state_machine_arn and workflow else None
    return StepFunctionsBackend(backends.aws_client("stepfunctions", workspace.settings()), arns)


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

    def render(self) -> RenderableType:
        return fitted("Execution progress (Ctrl-C stops safely)",
                      [Column("stage"),
                       *(Column(h, justify="right") for h in ("started", "succeeded", "failed"))],
                      [[stage, *counts] for stage, counts in self.rows.items()])


def _named(name: str | None) -> str | None:
    """--name as given (validated as StartExecution validates it); None when absent."""
    from embedding_ingest.pipeline.engine_store import validate_execution_name

    return None if name is None else validate_execution_name(name)


def _local_run(workflow: ItemKind, name: str | None, output: OutputFormat) -> dict[str, Any]:
    """One execution on the local engine, with a live board of its stages on a terminal."""
    from embedding_ingest.pipeline.run import run_execution

    board = StageBoard()
    if output is not OutputFormat.TABLE or not stderr.is_terminal:
        return run_execution(workflow, workspace.settings(), name=name, observer=board)
    with Live(board.render(), console=stderr, refresh_per_second=4) as live:
        def observe(stage: str, outcome: str, result: Any) -> None:
            board(stage, outcome, result)
            live.update(board.render())

        return run_execution(workflow, workspace.settings(), name=name, observer=observe)


def _until_idle(workflow: ItemKind, backend: Backend, interval: float | None, max_runs: int | None,
                output: OutputFormat, state_machine_arn: str | None = None) -> dict[str, Any]:
    from embedding_ingest.pipeline.run import run_until_idle

    def said(described: dict[str, Any]) -> None:
        # Wrapped at words to the terminal's width (80 columns included), not cut mid-word by it.
        if output is OutputFormat.TABLE:
            say(f"{described['name']}: {described['status']}, {described['summary']['message']}")

    aws = _aws(state_machine_arn, workflow) if backend is Backend.AWS else None
    return run_until_idle(workflow, workspace.settings(), interval=interval, max_runs=max_runs,
                          on_execution=said, backend=aws).as_json()


def start_execution(workflow: ItemKind = typer.Argument(None, help="line or word (or --state-machine-arn)",
                                                    metavar="KIND", case_sensitive=False,
                                                    show_default=False),
                    state_machine_arn: str = StateMachineArnOption,
                    name: str = typer.Option(None, "--name", help="Execution name (= the run's batch_id); "
                                             "default KIND-TIMESTAMP-RANDOM"),
                    until_idle: bool = typer.Option(False, "--until-idle",
                                                    help="Run executions back to back until no batch of "
                                                         "KIND is active, then print one summary"),
                    interval: float = typer.Option(None, "--interval", min=0, metavar="SECONDS",
                                                   help="--until-idle: seconds between executions "
                                                        "(default 0 for the local provider, 60 for openai)"),
                    max_runs: int = typer.Option(None, "--max-runs", min=1, metavar="N",
                                                 help="--until-idle: at most this many executions"),
                    backend: Backend = BackendOption,
                    wait: bool = typer.Option(True, "--wait/--no-wait",
                                              help="aws: wait for the execution to end"),
                    output: OutputFormat = OutputOption) -> None:
    """Run a workflow to completion (on the local engine, or on AWS with --backend aws) and say what it
    did; with --until-idle, run it until no batch of KIND is active. Ctrl-C stops safely: the running
    execution is recorded ABORTED and the next run resumes its batches."""
    workflow = given(output, lambda: workflow_from(workflow, state_machine_arn))
    resume = f"embedding-ingest start-execution {workflow.value} --until-idle"
    if until_idle:
        if name is not None:
            raise fail(CliError("--name names one execution (--until-idle starts several)",
                                try_=resume), output)
        _existing_workspace(backend, output)
        interrupts.on_interrupt(f"start-execution {workflow.value} --until-idle", resume=resume,
                                kept="the running execution is recorded ABORTED and its batches stay active")
        _started(output, f"running {workflow.value} executions until no {workflow.value} batch is active")
        result = guarded(output, lambda: _until_idle(workflow, backend, interval, max_runs, output,
                                                     state_machine_arn))
        emit(result, output, idle_tables)
        hint(output, result["summary"]["next"] or _after(workflow, backend))
        if result["summary"]["failed"]:
            raise typer.Exit(EXIT_EXECUTION_FAILED)
        return
    if interval is not None or max_runs is not None:
        raise fail(CliError("--interval and --max-runs go with --until-idle",
                            try_=f"{resume} --interval SECONDS"), output)
    run_name = guarded(output, lambda: _named(name))
    _existing_workspace(backend, output)
    interrupts.on_interrupt(f"start-execution {workflow.value}", resume=resume,
                            kept="the execution is recorded ABORTED and its batches stay active")
    if backend is Backend.AWS:
        from embedding_ingest.pipeline.run import run_execution

        described = guarded(output, lambda: run_execution(workflow, workspace.settings(), name=run_name,
                                                          wait=wait,
                                                          backend=_aws(state_machine_arn, workflow)))
        described["summary"]["next"] = on_aws(described["summary"]["next"])
    else:
        _started(output, f"running one {workflow.value} execution")
        described = guarded(output, lambda: _local_run(workflow, run_name, output))
    emit(described, output, describe_table)
    hint(output, described["summary"]["next"] or _after(workflow, backend))
    if described["status"] not in ("SUCCEEDED", "RUNNING"):
        raise typer.Exit(EXIT_EXECUTION_FAILED)


def _existing_workspace(backend: Backend, output: OutputFormat) -> None:
    """A local run builds its own ports from the settings, which would create a missing workspace:
    refuse it first (exit 2, as every command but an import does; cli/workspace.py)."""
    if backend is Backend.LOCAL:
        guarded(output, workspace.require_workspace)


def _started(output: OutputFormat, what: str) -> None:
    """One line on a terminal as work starts: what runs, and that Ctrl-C is safe."""
    if output is not OutputFormat.JSON and stderr.is_terminal:
        stderr.print(f"{what}; Ctrl-C stops safely", markup=False, highlight=False, soft_wrap=True)


def _after(workflow: ItemKind, backend: Backend) -> str | None:
    """The next step once a run left nothing to do: read from the workspace (local backend); when
    nothing of `workflow`'s kind exists, the workspace's first step (the other kind's, or an import)."""
    if backend is not Backend.LOCAL:
        return None
    ledger = workspace.ledger()
    return next_steps.for_kind(ledger, workflow) or next_steps.overall(ledger)


def _local_described(name: str, output: OutputFormat) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """DescribeExecution, the history events and the workflow ("line", "word", or another state
    machine's name for a `definitions run` execution) of a local execution, by name or ARN (any
    account); exits 1 if there is none (ExecutionDoesNotExist, as AWS answers)."""
    from embedding_ingest.pipeline import engine_store  # its describe_execution is not the command below

    guarded(output, workspace.require_workspace)
    ledger = workspace.ledger()
    record = given(output, lambda: engine_store.find_execution(ledger, name))
    if record is None:
        raise fail(ExecutionDoesNotExist(f"Execution Does Not Exist: {name!r}"), output, EXIT_USAGE,
                   try_="embedding-ingest list-executions")
    events = engine_store.execution_history(ledger.get_events(record.execution_arn))["events"]
    return engine_store.describe_execution(record), events, record.workflow


def describe_execution(name: str = typer.Argument(None, help="Execution name or ARN"),
                       execution_arn: str = ExecutionArnOption,
                       backend: Backend = BackendOption,
                       workflow: ItemKind = WorkflowOption,
                       output: OutputFormat = OutputOption) -> None:
    """Status, input and output of an execution (DescribeExecution shape) and its summary. Its next
    step is read from the workspace as it is now (a failed run's: its failed-only history)."""
    from embedding_ingest.pipeline.report import summarize_execution

    name = given(output, lambda: execution_from(name, execution_arn))
    workflow = workflow or workflow_of_execution_arn(name)

    if backend is Backend.AWS:
        aws = guarded(output, _aws)
        described = guarded(output, lambda: _aws_find(aws, name, workflow, lambda w: aws.describe(name, w)))
        events = None
        if described["status"] not in ("SUCCEEDED", "RUNNING"):
            events = guarded(output, lambda: aws.history(described["executionArn"],
                                                         _workflow_of(described).value))
    else:
        described, events, workflow = _local_described(name, output)
        if workflow not in {kind.value for kind in ItemKind}:
            # Another state machine's run (`definitions run`): a summary of batches and embeddings
            # would only mislead ("published nothing ... next: submit line").
            emit(described, output, describe_table)
            return
    kept = None
    if backend is Backend.LOCAL:  # the message shows the published version as `snapshots list` does
        kept = [v.version for v in workspace.ledger().list_versions(ItemKind(workflow).database)]
    described["summary"] = summarize_execution(described, events=events, kept_versions=kept)
    if backend is Backend.AWS:  # the run's own next step names the local engine's commands
        described["summary"]["next"] = on_aws(described["summary"]["next"])
    if backend is Backend.LOCAL and described["status"] in ("SUCCEEDED", "ABORTED"):
        # The run's own next step ("--until-idle" while its batches were in progress) goes stale as
        # soon as anything else runs: read it from the workspace now, as `status` does.
        described["summary"]["next"] = next_steps.after_run(workspace.ledger(), ItemKind(workflow))
    emit(described, output, describe_table)
    hint(output, described["summary"]["next"])


# The commands a run's next step may name that also run against AWS (--backend aws).
_AWS_COMMANDS = ("start-execution", "describe-execution", "get-execution-history")


def on_aws(command: str | None) -> str | None:
    """A run's next step (pipeline/report.py: local commands) for an execution on AWS: the same command
    with `--backend aws` after its argument, or None for a command that reads the local workspace
    (`submit`), which says nothing about the deployed pipeline."""
    words = (command or "").split(" ")
    if len(words) < 3 or words[0] != "embedding-ingest" or words[1] not in _AWS_COMMANDS:
        return None
    return " ".join([*words[:3], "--backend", "aws", *words[3:]])


def _workflow_of(described: dict[str, Any]) -> ItemKind:
    machine = str(described.get("stateMachineArn") or "").rsplit(":", 1)[-1]
    return ItemKind.WORD if machine.startswith("word") else ItemKind.LINE


def get_execution_history(name: str = typer.Argument(None, help="Execution name or ARN"),
                          execution_arn: str = ExecutionArnOption,
                          max_results: int = typer.Option(None, "--max-results", min=1, metavar="N",
                                                          help="At most N events; nextToken gives the rest"),
                          next_token: str = typer.Option(None, "--next-token", metavar="TOKEN",
                                                         help="The nextToken of the previous page"),
                          reverse_order: bool = typer.Option(False, "--reverse-order",
                                                             help="Newest event first"),
                          failed_only: bool = typer.Option(False, "--failed-only",
                                                           help="Only *Failed events, with the state that "
                                                                "failed, the error and the cause"),
                          backend: Backend = BackendOption,
                          workflow: ItemKind = WorkflowOption,
                          output: OutputFormat = OutputOption) -> None:
    """History events of an execution (GetExecutionHistory shape, paged with --max-results and
    --next-token as the AWS CLI pages them)."""
    name = given(output, lambda: execution_from(name, execution_arn))
    workflow = workflow or workflow_of_execution_arn(name)
    if backend is Backend.AWS:
        aws = guarded(output, _aws)
        events = guarded(output, lambda: _aws_find(aws, name, workflow, lambda w: aws.history(name, w)))
    else:
        _, events, _ = _local_described(name, output)
    if failed_only:
        events = failed_events(events)
    if reverse_order:
        events = events[::-1]
    offset = guarded(output, lambda: page_offset(name, next_token)) if next_token else 0
    end = len(events) if max_results is None else offset + max_results
    page: dict[str, Any] = {"events": events[offset:end]}
    if end < len(events):
        page["nextToken"] = page_token(name, end)
    if failed_only and not page["events"] and output is not OutputFormat.JSON:
        stderr.print(f"no failed events in {name}", markup=False, highlight=False, soft_wrap=True)
        hint(output, f"embedding-ingest describe-execution {shlex.quote(name)}")  # its summary
        return
    emit(page, output, lambda r: history_table(f"{counted(len(r['events']), 'event')} of {name}", r["events"],
                                               failed_only=failed_only))
    if "nextToken" in page:
        hint(output, f"embedding-ingest get-execution-history {name} --max-results {max_results} "
                     f"--next-token {page['nextToken']}" + (" --failed-only" if failed_only else "")
             + (" --reverse-order" if reverse_order else ""), fold=True)


def list_executions(workflow: ItemKind = typer.Option(None, "--workflow", metavar="KIND",
                                                      help="Only line or word executions",
                                                      case_sensitive=False),
                    state_machine_arn: str = StateMachineArnOption,
                    status: ExecutionStatus = typer.Option(None, "--status", metavar="STATUS",
                                                           case_sensitive=False,
                                                           help="Only executions in this status: running, "
                                                                "succeeded, failed, timed_out, aborted"),
                    max_results: int = typer.Option(None, "--max-results", min=1, metavar="N",
                                                    help="At most N executions (newest first)"),
                    backend: Backend = BackendOption,
                    output: OutputFormat = OutputOption) -> None:
    """Executions, newest first (ListExecutions shape)."""
    from embedding_ingest.pipeline import engine_store

    workflow = given(output, lambda: workflow_from(workflow, state_machine_arn, required=False))

    if backend is Backend.AWS:
        aws = guarded(output, lambda: _aws(state_machine_arn, workflow))
        kinds = [workflow] if workflow else list(ItemKind)
        executions = guarded(output, lambda: sorted(
            (e for kind in kinds for e in aws.list(kind.value, status=status.value if status else None,
                                                     max_results=max_results)),
            key=lambda e: e.get("startDate") or 0, reverse=True))[:max_results]
    else:
        guarded(output, workspace.require_workspace)
        records = workspace.ledger().list_executions(workflow=workflow.value if workflow else None,
                                                   status=status, limit=max_results)
        executions = [{k: v for k, v in engine_store.describe_execution(r).items()
                       if k not in ("input", "output")}
                      for r in records]
    emit({"executions": executions}, output, lambda r: executions_table(r["executions"]))
    if not executions and backend is Backend.LOCAL:
        hint(output, "embedding-ingest list-executions" if (workflow or status)
             else next_steps.overall(workspace.ledger()))


def register(app: typer.Typer) -> None:
    app.command("start-execution", rich_help_panel=Panel.RUN,
                short_help="Run a workflow: poll, publish (--until-idle).")(start_execution)
    app.command("describe-execution", rich_help_panel=Panel.MONITOR,
                short_help="One execution: status and summary.")(describe_execution)
    app.command("get-execution-history", rich_help_panel=Panel.MONITOR,
                short_help="An execution's history events.")(get_execution_history)
    app.command("list-executions", rich_help_panel=Panel.MONITOR,
                short_help="Executions, newest first.")(list_executions)
