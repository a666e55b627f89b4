"""Where the console reads executions from: the local engine's records (through the ExecutionLedger
port) or the deployed state machines (through the Step Functions API, read-only). Both speak the AWS
shapes: DescribeExecution, GetExecutionHistory events, and the ASL definition the execution ran."""

from __future__ import annotations

from typing import Any, Protocol

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.pipeline.engine_store import describe_execution, execution_history
from embedding_ingest.stores.ports import ExecutionLedger
from embedding_ingest.stores.records import ExecutionStatus

WORKFLOWS = ("line", "word")


class ExecutionNotFoundError(InvalidInputError):
    """No execution has that name (or ARN)."""


class ExecutionSource(Protocol):
    """Read-only access to executions, in the Step Functions API's shapes."""

    backend: str

    def list(self, *, workflow: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
        """At most `limit` executions (DescribeExecution shape, with a `workflow` key), newest first."""

    def describe(self, name: str) -> dict[str, Any]:
        """DescribeExecution plus `workflow`. Raises ExecutionNotFoundError."""

    def history(self, name: str) -> list[dict[str, Any]]:
        """Every GetExecutionHistory event, oldest first. Raises ExecutionNotFoundError."""

    def definition(self, name: str) -> dict[str, Any] | None:
        """The ASL definition the execution runs (None when it cannot be known)."""


class LocalSource:
    """Executions of the local engine, read through the ExecutionLedger port. The local engine keeps no
    copy of the definition an execution ran, so it is rebuilt from the pipeline's definitions (the one
    definition both engines run)."""

    backend = "local"

    def __init__(self, ledger: ExecutionLedger) -> None:
        self._ledger = ledger

    def _record(self, name: str):
        record = self._ledger.get_execution(name)
        if record is None:
            raise ExecutionNotFoundError(f"no execution named {name!r}")
        return record

    def list(self, *, workflow: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
        records = self._ledger.list_executions(workflow=workflow,
                                               status=ExecutionStatus(status) if status else None,
                                               limit=limit)
        return [describe_execution(r) | {"workflow": r.workflow} for r in records]

    def describe(self, name: str) -> dict[str, Any]:
        record = self._record(name)
        return describe_execution(record) | {"workflow": record.workflow}

    def history(self, name: str) -> list[dict[str, Any]]:
        return execution_history(self._ledger.get_events(self._record(name).execution_arn))["events"]

    def definition(self, name: str) -> dict[str, Any] | None:
        from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn

        workflow = self._record(name).workflow
        if workflow not in WORKFLOWS:
            return None
        return build_definition(workflow, local_resource_arn)


class StepFunctionsSource:
    """Executions of the deployed line/word state machines, through StepFunctionsBackend (only its
    Describe*/List*/Get* calls: the console never changes anything on AWS)."""

    backend = "aws"

    def __init__(self, backend: Any) -> None:
        self._aws = backend

    def _find(self, name: str, action) -> tuple[str, Any]:
        """(workflow, action(workflow)) for the first of line/word that knows `name`."""
        for workflow in WORKFLOWS:
            try:
                return workflow, action(workflow)
            except InvalidInputError:
                continue
        raise ExecutionNotFoundError(f"no execution named {name!r} in the line or word state machine")

    def list(self, *, workflow: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
        listed = [e | {"workflow": w} for w in ([workflow] if workflow else WORKFLOWS)
                  for e in self._aws.list(w, status=status, max_results=limit)]
        return sorted(listed, key=lambda e: e.get("startDate") or 0, reverse=True)[:limit]

    def describe(self, name: str) -> dict[str, Any]:
        workflow, described = self._find(name, lambda w: self._aws.describe(name, w))
        return described | {"workflow": workflow}

    def history(self, name: str) -> list[dict[str, Any]]:
        return self._find(name, lambda w: self._aws.history(name, w))[1]

    def definition(self, name: str) -> dict[str, Any] | None:
        return self._find(name, lambda w: self._aws.definition(name, w))[1]
