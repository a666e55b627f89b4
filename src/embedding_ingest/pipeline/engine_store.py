"""The asl_local engine on the product's ledger: the one place where the product meets the engine's
store protocol, records, names and errors.

- `LedgerExecutionStore` adapts an ExecutionLedger (SQLite or DynamoDB) to asl_local's ExecutionStore,
  so every local execution (our workflows, and `definitions run`) is kept where describe-execution,
  get-execution-history, list-executions and the web console read it.
- `WorkflowEngine` is the engine as the product runs it: `start_execution("line", ...)` runs as the
  state machine `line-ingest`, returns the ledger's record, and raises the engine's StartExecution
  errors as ours (InvalidInputError, ExecutionAlreadyExistsError). Definition errors stay the engine's
  (asl_local.AslError): only `definitions run` can meet them, and the CLI reports them as it reports ours.
- `describe_execution` / `execution_history`: a ledger record or history as DescribeExecution /
  GetExecutionHistory shape them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import asl_local
from asl_local.clock import Clock
from asl_local.history import to_aws_history, to_describe_execution
from asl_local.invokers import Invoker
from asl_local.names import validate_execution_name as engine_validate_execution_name
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.exceptions import ExecutionAlreadyExistsError
from embedding_ingest.stores.ports import ExecutionLedger
from embedding_ingest.stores.records import ExecutionRecord, ExecutionStatus, HistoryEvent

# Our workflows' state machines (as deployed: aws/deploy/template.py names them `{kind}-ingest-<stage>`).
STATE_MACHINES = {"line": "line-ingest", "word": "word-ingest"}
_WORKFLOWS = {machine: workflow for workflow, machine in STATE_MACHINES.items()}


def state_machine_name(workflow: str) -> str:
    """"line" -> "line-ingest", "word" -> "word-ingest"; any other name (a definition run with
    `definitions run`) is the state machine's own name."""
    return STATE_MACHINES.get(workflow, workflow)


def workflow_of(state_machine: str) -> str:
    """The ledger's `workflow` of an execution of `state_machine` (the inverse of state_machine_name)."""
    return _WORKFLOWS.get(state_machine, state_machine)


def to_engine_record(record: ExecutionRecord) -> asl_local.ExecutionRecord:
    """A ledger execution record as the engine's (the same fields, without `workflow`)."""
    return asl_local.ExecutionRecord(
        execution_arn=record.execution_arn, name=record.name, state_machine_arn=record.state_machine_arn,
        status=asl_local.ExecutionStatus(record.status.value), start_date=record.start_date,
        stop_date=record.stop_date, input=record.input, output=record.output, error=record.error,
        cause=record.cause)


def to_ledger_record(record: asl_local.ExecutionRecord) -> ExecutionRecord:
    """The engine's execution record as the ledger's; `workflow` from its state machine's name."""
    return ExecutionRecord(
        execution_arn=record.execution_arn, name=record.name, state_machine_arn=record.state_machine_arn,
        workflow=workflow_of(record.state_machine_name), status=ExecutionStatus(record.status.value),
        start_date=record.start_date, stop_date=record.stop_date, input=record.input, output=record.output,
        error=record.error, cause=record.cause)


def _engine_event(event: HistoryEvent) -> asl_local.HistoryEvent:
    return asl_local.HistoryEvent(id=event.id, previous_event_id=event.previous_event_id,
                                  timestamp=event.timestamp, type=event.type, details=event.details)


def _ledger_event(event: asl_local.HistoryEvent) -> HistoryEvent:
    return HistoryEvent(id=event.id, previous_event_id=event.previous_event_id, timestamp=event.timestamp,
                        type=event.type, details=dict(event.details))


def describe_execution(record: ExecutionRecord) -> dict[str, Any]:
    """DescribeExecution's body for a ledger record (asl_local.history.to_describe_execution)."""
    return to_describe_execution(to_engine_record(record))


def execution_history(events: Iterable[HistoryEvent]) -> dict[str, Any]:
    """GetExecutionHistory's body for a ledger history, oldest first (asl_local.history.to_aws_history)."""
    return to_aws_history(_engine_event(event) for event in events)


class InvalidArn(InvalidInputError):  # noqa: N818 - AWS's error code, as asl_local.InvalidArn
    """A state machine or execution ARN that is not one (the engine's InvalidArn, as ours)."""


def same_state_machine(ours: str, given: str) -> bool:
    """Whether a state machine name from an ARN (`line-ingest-sf-dev-1554303`, as the reference's
    Pulumi stack names it, or the template's `line-ingest-dev`) designates our `line-ingest`."""
    return given == ours or (ours in _WORKFLOWS and given.startswith(f"{ours}-"))


def workflow_of_arn(state_machine_arn: str) -> str:
    """The workflow ("line", "word") a state machine ARN designates (any region or account; its name
    `line-ingest...` or `word-ingest...`), or another state machine's own name. Raises InvalidArn for
    what is no state machine ARN."""
    try:
        parsed = asl_local.parse_states_arn(state_machine_arn, expect="stateMachine")
    except asl_local.InvalidArn as exc:
        raise InvalidArn(str(exc)) from exc
    for machine, workflow in _WORKFLOWS.items():
        if same_state_machine(machine, parsed.state_machine):
            return workflow
    return parsed.state_machine


def find_execution(ledger: ExecutionLedger, name_or_arn: str) -> ExecutionRecord | None:
    """The execution `name_or_arn` designates: by its exact ARN or name (ExecutionLedger.get_execution),
    else by the state machine and execution names an ARN holds, whatever its region and account
    (executions started before the local account changed keep their 000000000000 ARNs). Raises
    InvalidArn for an ARN that is no execution ARN."""
    record = ledger.get_execution(name_or_arn)
    if record is not None or not name_or_arn.startswith("arn:"):
        return record
    try:
        parsed = asl_local.parse_states_arn(name_or_arn, expect="execution")
    except asl_local.InvalidArn as exc:
        raise InvalidArn(str(exc)) from exc
    record = ledger.get_execution(parsed.execution or "")
    if record is not None and same_state_machine(record.state_machine_arn.rsplit(":", 1)[-1],
                                                 parsed.state_machine):
        return record
    return None


class LedgerExecutionStore:
    """asl_local's ExecutionStore over the product's ExecutionLedger: the engine's records in, the
    ledger's out, and back. Thread-safe as the ledger is."""

    def __init__(self, ledger: ExecutionLedger) -> None:
        self.ledger = ledger

    def create_execution(self, record: asl_local.ExecutionRecord) -> asl_local.ExecutionRecord | None:
        # The same execution under another account's ARN (a workspace older than the account change).
        same = find_execution(self.ledger, record.execution_arn)
        if same is not None and same.execution_arn != record.execution_arn:
            return to_engine_record(same)
        try:
            self.ledger.create_execution(to_ledger_record(record))
        except ExecutionAlreadyExistsError:
            existing = self.ledger.get_execution(record.execution_arn)
            if existing is None:  # the ledger refused it, yet has none: nothing to return
                raise
            return to_engine_record(existing)
        return None

    def update_execution(self, record: asl_local.ExecutionRecord) -> None:
        self.ledger.update_execution(to_ledger_record(record))

    def get_execution(self, name_or_arn: str) -> asl_local.ExecutionRecord | None:
        record = find_execution(self.ledger, name_or_arn)
        return None if record is None else to_engine_record(record)

    def append_events(self, execution_arn: str, events: Sequence[asl_local.HistoryEvent]) -> None:
        self.ledger.append_events(execution_arn, [_ledger_event(event) for event in events])

    def get_events(self, execution_arn: str) -> list[asl_local.HistoryEvent]:
        return [_engine_event(event) for event in self.ledger.get_events(execution_arn)]


@contextmanager
def start_execution_errors() -> Iterator[None]:
    """The engine's StartExecution errors as ours, with the same message: a name or input it refuses is
    InvalidInputError, a reused name ExecutionAlreadyExistsError (what the CLI and console report)."""
    try:
        yield
    except (asl_local.InvalidName, asl_local.InvalidExecutionInput) as exc:
        raise InvalidInputError(str(exc)) from exc
    except asl_local.ExecutionAlreadyExists as exc:
        raise ExecutionAlreadyExistsError(str(exc)) from exc


def validate_execution_name(name: str) -> str:
    """`name` if StartExecution would accept it (asl_local.names); InvalidInputError naming the rule."""
    with start_execution_errors():
        return engine_validate_execution_name(name)


class WorkflowEngine:
    """The asl_local engine recording in `ledger` (see the module's docstring). `clock` and `options`
    (rng, max_map_threads, max_history_events) are LocalEngine's."""

    def __init__(self, ledger: ExecutionLedger, invoker: Invoker, *, clock: Clock | None = None,
                 **options: Any) -> None:
        self.ledger = ledger
        self.engine = asl_local.LocalEngine(LedgerExecutionStore(ledger), invoker, clock=clock, **options)

    def start_execution(self, workflow: str, definition: dict[str, Any] | str, name: str,
                        input: Any = None) -> ExecutionRecord:  # noqa: A002 - StartExecution's word
        """Run `definition` as execution `name` of `workflow`'s state machine (state_machine_name) to its
        end; return the ledger's record. Raises InvalidInputError for a bad name or input,
        ExecutionAlreadyExistsError for a reused name, asl_local.UnsupportedDefinitionError (or its
        InvalidDefinitionError) for a definition the engine refuses."""
        with start_execution_errors():
            record = self.engine.start_execution(state_machine_name(workflow), definition, name, input)
        return to_ledger_record(record)
