"""LocalEngine: runs a definition to completion in this process, recording the execution and its
history through an ExecutionLedger exactly as Step Functions would describe them."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from asl_local.clock import Clock, RealClock
from asl_local.engine.compile import compile_definition
from asl_local.engine.core import Branch, ExecutionTimedOut, Run, iso_time
from asl_local.errors import STATES_RUNTIME, StatesFailure
from asl_local.history import HistoryRecorder, to_aws_history, to_describe_execution
from asl_local.invokers import Invoker
from asl_local.limits import MAX_HISTORY_EVENTS, MAX_PAYLOAD_BYTES, payload_bytes, to_json
from asl_local.names import validate_execution_name
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.exceptions import ExecutionAlreadyExistsError
from embedding_ingest.stores.ports import ExecutionLedger
from embedding_ingest.stores.records import ExecutionRecord, ExecutionStatus

REGION = "us-east-1"
ACCOUNT = "000000000000"
# Readers (the web console) see a running execution's events at most this late.
HISTORY_FLUSH_SECONDS = 0.5


def state_machine_name(workflow: str) -> str:
    """Our workflows ("line", "word") run as the state machines "line-ingest" and "word-ingest"; any
    other name (a definition run with `definitions run`) is the state machine's own name."""
    return f"{workflow}-ingest" if workflow in ("line", "word") else workflow


def state_machine_arn(workflow: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{state_machine_name(workflow)}"


def execution_arn(workflow: str, name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{state_machine_name(workflow)}:{name}"


def _json_value(value: Any, what: str) -> Any:
    """`value` itself, or the JSON text `value` parsed; InvalidInputError naming `what` if it is not JSON."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{what} is not valid JSON: {exc}") from exc


class LocalEngine:
    """Runs any JSONPath Amazon States Language definition (Distributed Map, JSONata, activities and
    service integrations are refused at load) and records it as Step Functions would.

    `clock` is the engine's time (history timestamps, Wait, Retry back-off, timeouts): a RealClock by
    default, a VirtualClock in tests so a 1-hour Wait takes no time. `sleep` is the shorthand of
    earlier versions: a RealClock that waits with it (a no-op makes waits instant, timestamps real).
    `rng` drives JitterStrategy FULL and States.MathRandom."""

    def __init__(self, ledger: ExecutionLedger, invoker: Invoker, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Clock | None = None,
                 rng: random.Random | None = None, max_map_threads: int = 64,
                 max_history_events: int = MAX_HISTORY_EVENTS) -> None:
        self.ledger = ledger
        self.invoker = invoker
        self._clock: Clock = clock if clock is not None else RealClock(sleep_function=sleep)
        self._rng = rng or random.Random()
        self._max_map_threads = max_map_threads
        self._max_history_events = max_history_events

    def start_execution(self, workflow: str, definition: dict[str, Any] | str, name: str,
                        input: dict[str, Any] | str | None = None) -> ExecutionRecord:  # noqa: A002
        """Run `definition` to completion and return the final record (SUCCEEDED, FAILED or TIMED_OUT).

        `workflow` names the state machine ("line"/"word" are ours: line-ingest, word-ingest).
        Raises InvalidDefinitionError / UnsupportedDefinitionError (nothing recorded) for a definition
        AWS would reject or the engine does not run, InvalidInputError for a bad name or input,
        ExecutionAlreadyExistsError for a reused name (a closed execution, or different input); a
        RUNNING execution of that name and identical input is returned as it is, as StartExecution
        does."""
        definition = _json_value(definition, "the definition")
        program = compile_definition(definition)
        timeout = definition.get("TimeoutSeconds") if isinstance(definition, dict) else None
        validate_execution_name(name)
        data = self._parse_input(input, name)
        arn = execution_arn(workflow, name)
        clock = self._clock
        start = clock.now()
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
        history = HistoryRecorder(self.ledger, arn, clock=clock.now, max_events=self._max_history_events,
                                  flush_seconds=HISTORY_FLUSH_SECONDS)
        run = Run(history=history, invoker=self.invoker, clock=clock,
                  rng=self._rng, max_map_threads=self._max_map_threads,
                  execution={"Id": arn, "Name": name, "Input": data, "StartTime": iso_time(start),
                             "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/local-engine"},
                  state_machine={"Id": record.state_machine_arn, "Name": state_machine_name(workflow)},
                  deadline=None if timeout is None else start + timeout, timeout_seconds=timeout)
        branch = Branch(run, 0)
        final = record.model_copy(update={"status": ExecutionStatus.ABORTED})
        try:
            # AWS links the first state's event to 0, not to ExecutionStarted: the branch starts at 0.
            history.record("ExecutionStarted", {"input": record.input, "inputDetails": {"truncated": False},
                                                "roleArn": run.execution["RoleArn"]}, previous=0)
            output = to_json(program.run(branch, data))
            branch.record("ExecutionSucceeded", {"output": output, "outputDetails": {"truncated": False}})
            final = record.model_copy(update={"status": ExecutionStatus.SUCCEEDED, "output": output,
                                              "stop_date": clock.now()})
        except ExecutionTimedOut as timed_out:
            branch.record("ExecutionTimedOut", {"error": timed_out.error, "cause": timed_out.cause})
            final = record.model_copy(update={"status": ExecutionStatus.TIMED_OUT, "error": timed_out.error,
                                              "cause": timed_out.cause, "stop_date": clock.now()})
        except StatesFailure as failure:
            final = self._failed(record, branch, failure)
        except Exception as exc:  # noqa: BLE001 - an engine/invoker fault still closes the execution
            failure = StatesFailure(STATES_RUNTIME, f"the local engine failed: {type(exc).__name__}: {exc}")
            final = self._failed(record, branch, failure)
        finally:  # KeyboardInterrupt and the like leave the execution ABORTED, never RUNNING
            history.close()
            if final.stop_date is None:
                final = final.model_copy(update={"stop_date": clock.now()})
            self.ledger.update_execution(final)
        return final

    def _failed(self, record: ExecutionRecord, branch: Branch, failure: StatesFailure) -> ExecutionRecord:
        branch.record("ExecutionFailed", {"error": failure.error, "cause": failure.cause})
        return record.model_copy(update={"status": ExecutionStatus.FAILED, "error": failure.error,
                                         "cause": failure.cause, "stop_date": self._clock.now()})

    @staticmethod
    def _parse_input(raw: dict[str, Any] | str | None, name: str) -> Any:
        if raw is None:
            return {}
        raw = _json_value(raw, f"input of execution {name!r}")
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
