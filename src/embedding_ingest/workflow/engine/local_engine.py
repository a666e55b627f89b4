"""LocalEngine: runs a definition to completion in this process, recording the execution and its
history through an ExecutionLedger exactly as Step Functions would describe them."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.names import validate_execution_name
from embedding_ingest.stores.exceptions import ExecutionAlreadyExistsError
from embedding_ingest.stores.ports import ExecutionLedger
from embedding_ingest.stores.records import ExecutionRecord, ExecutionStatus
from embedding_ingest.workflow.engine.compile import compile_definition
from embedding_ingest.workflow.engine.core import Branch, Run, iso_time
from embedding_ingest.workflow.exceptions import STATES_RUNTIME, StatesFailure
from embedding_ingest.workflow.history import HistoryRecorder, to_aws_history, to_describe_execution
from embedding_ingest.workflow.invokers import Invoker
from embedding_ingest.workflow.limits import MAX_HISTORY_EVENTS, MAX_PAYLOAD_BYTES, payload_bytes, to_json

REGION = "us-east-1"
ACCOUNT = "000000000000"
# Readers (the web console) see a running execution's events at most this late.
HISTORY_FLUSH_SECONDS = 0.5


def state_machine_arn(workflow: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{workflow}-ingest"


def execution_arn(workflow: str, name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{workflow}-ingest:{name}"


class LocalEngine:
    """Interprets the ASL subset our definitions use. `sleep` is what Retry waits with (inject a no-op
    or a recorder in tests); `rng` drives JitterStrategy FULL."""

    def __init__(self, ledger: ExecutionLedger, invoker: Invoker, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, max_map_threads: int = 64,
                 max_history_events: int = MAX_HISTORY_EVENTS) -> None:
        self.ledger = ledger
        self.invoker = invoker
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._max_map_threads = max_map_threads
        self._max_history_events = max_history_events

    def start_execution(self, workflow: str, definition: dict[str, Any] | str, name: str,
                        input: dict[str, Any] | str | None = None) -> ExecutionRecord:  # noqa: A002
        """Run `definition` to completion and return the final record (SUCCEEDED or FAILED).

        Raises UnsupportedDefinitionError (nothing recorded) when the definition leaves the subset,
        InvalidInputError for a bad name or input, ExecutionAlreadyExistsError for a reused name (a
        closed execution, or different input); a RUNNING execution of that name and identical input is
        returned as it is, as StartExecution does."""
        program = compile_definition(json.loads(definition) if isinstance(definition, str) else definition)
        validate_execution_name(name)
        data = self._parse_input(input, name)
        arn = execution_arn(workflow, name)
        start = self._clock()
        record = ExecutionRecord(execution_arn=arn, name=name, state_machine_arn=state_machine_arn(workflow),
                                 workflow=workflow, status=ExecutionStatus.RUNNING, start_date=start,
                                 input=to_json(data))
        try:
            self.ledger.create_execution(record)
        except ExecutionAlreadyExistsError:
            # StartExecution is idempotent for a running execution started with the same input.
            existing = self.ledger.get_execution(arn)
            if existing is not None and existing.status is ExecutionStatus.RUNNING \
                    and json.loads(existing.input) == data:
                return existing
            raise
        history = HistoryRecorder(self.ledger, arn, clock=self._clock, max_events=self._max_history_events,
                                  flush_seconds=HISTORY_FLUSH_SECONDS)
        run = Run(history=history, invoker=self.invoker, sleep=self._sleep, clock=self._clock,
                  rng=self._rng, max_map_threads=self._max_map_threads,
                  execution={"Id": arn, "Name": name, "Input": data, "StartTime": iso_time(start),
                             "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/local-engine"},
                  state_machine={"Id": record.state_machine_arn, "Name": f"{workflow}-ingest"})
        branch = Branch(run, 0)
        final = record.model_copy(update={"status": ExecutionStatus.ABORTED})
        try:
            branch.record("ExecutionStarted", {"input": record.input, "inputDetails": {"truncated": False},
                                               "roleArn": run.execution["RoleArn"]})
            output = to_json(program.run(branch, data))
            branch.record("ExecutionSucceeded", {"output": output, "outputDetails": {"truncated": False}})
            final = record.model_copy(update={"status": ExecutionStatus.SUCCEEDED, "output": output,
                                              "stop_date": self._clock()})
        except StatesFailure as failure:
            final = self._failed(record, branch, failure)
        except Exception as exc:  # noqa: BLE001 - an engine/invoker fault still closes the execution
            failure = StatesFailure(STATES_RUNTIME, f"the local engine failed: {type(exc).__name__}: {exc}")
            final = self._failed(record, branch, failure)
        finally:  # KeyboardInterrupt and the like leave the execution ABORTED, never RUNNING
            history.close()
            if final.stop_date is None:
                final = final.model_copy(update={"stop_date": self._clock()})
            self.ledger.update_execution(final)
        return final

    def _failed(self, record: ExecutionRecord, branch: Branch, failure: StatesFailure) -> ExecutionRecord:
        branch.record("ExecutionFailed", {"error": failure.error, "cause": failure.cause})
        return record.model_copy(update={"status": ExecutionStatus.FAILED, "error": failure.error,
                                         "cause": failure.cause, "stop_date": self._clock()})

    @staticmethod
    def _parse_input(raw: dict[str, Any] | str | None, name: str) -> Any:
        if raw is None:
            return {}
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"input of execution {name!r} is not valid JSON: {exc}") from exc
        size = payload_bytes(raw)
        if size > MAX_PAYLOAD_BYTES:
            raise InvalidInputError(f"input of execution {name!r} has {size} bytes, over the "
                                    f"{MAX_PAYLOAD_BYTES}-byte limit")
        return raw

    def describe_execution(self, name_or_arn: str) -> dict[str, Any] | None:
        record = self.ledger.get_execution(name_or_arn)
        return None if record is None else to_describe_execution(record)

    def get_execution_history(self, execution_arn: str) -> dict[str, Any]:
        return to_aws_history(self.ledger.get_events(execution_arn))
