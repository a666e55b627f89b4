"""LocalEngine: runs a definition to completion in this process, recording the execution and its
history in an ExecutionStore exactly as Step Functions would describe them."""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

from asl_local.arns import DEFAULT_ACCOUNT, DEFAULT_REGION, execution_arn, state_machine_arn
from asl_local.clock import Clock, RealClock
from asl_local.engine.compile import compile_definition
from asl_local.engine.core import Branch, ExecutionTimedOut, Run, iso_time
from asl_local.errors import (
    STATES_RUNTIME,
    ExecutionAlreadyExists,
    InvalidDefinitionError,
    InvalidExecutionInput,
    StatesFailure,
)
from asl_local.history import HistoryRecorder, to_aws_history, to_describe_execution
from asl_local.invokers import Invoker
from asl_local.limits import MAX_HISTORY_EVENTS, MAX_PAYLOAD_BYTES, payload_bytes, to_json
from asl_local.names import validate_execution_name
from asl_local.store import ExecutionRecord, ExecutionStatus, ExecutionStore

# Readers of the store (a UI polling it) see a running execution's events at most this late.
HISTORY_FLUSH_SECONDS = 0.5


class LocalEngine:
    """Runs any JSONPath Amazon States Language definition (Distributed Map, JSONata, activities and
    service integrations are refused at load) and records it in `store` as Step Functions would.

    `clock` is the engine's time (history timestamps, Wait, Retry back-off, timeouts): a RealClock by
    default, a VirtualClock in tests so a 1-hour Wait takes no time (a RealClock with a no-op
    `sleep_function` makes waits instant and keeps timestamps real). `rng` drives JitterStrategy FULL
    and States.MathRandom. `region` and `account` go into the ARNs it makes (arns.py: by default
    Step Functions Local's us-east-1 and 123456789012) and into TaskScheduled events."""

    def __init__(self, store: ExecutionStore, invoker: Invoker, *, clock: Clock | None = None,
                 rng: random.Random | None = None, max_map_threads: int = 64,
                 max_history_events: int = MAX_HISTORY_EVENTS, region: str = DEFAULT_REGION,
                 account: str = DEFAULT_ACCOUNT) -> None:
        self.region = region
        self.account = account
        self.store = store
        self.invoker = invoker
        self._clock: Clock = clock if clock is not None else RealClock()
        self._rng = rng or random.Random()
        self._max_map_threads = max_map_threads
        self._max_history_events = max_history_events

    def start_execution(self, state_machine: str, definition: dict[str, Any] | str, name: str,
                        input: Any = None) -> ExecutionRecord:  # noqa: A002 - StartExecution's word
        """Run `definition` as execution `name` of the state machine named `state_machine`, to
        completion, and return the final record (SUCCEEDED, FAILED or TIMED_OUT). `definition` and
        `input` are JSON values or JSON texts (None: `{}`).

        Raises InvalidDefinitionError / UnsupportedDefinitionError (nothing recorded) for a definition
        AWS would reject or the engine does not run, InvalidName for a name and InvalidExecutionInput
        for an input StartExecution would refuse, ExecutionAlreadyExists for a reused name (a closed
        execution, or different input); a RUNNING execution of that name and identical input is
        returned as it is, as StartExecution does."""
        if isinstance(definition, str):
            try:
                definition = json.loads(definition)
            except json.JSONDecodeError as exc:
                raise InvalidDefinitionError("the definition", f"not valid JSON: {exc}",
                                             code="INVALID_JSON_DESCRIPTION") from exc
        program = compile_definition(definition)
        timeout = definition.get("TimeoutSeconds") if isinstance(definition, dict) else None
        validate_execution_name(name)
        data = self._parse_input(input, name)
        arn = execution_arn(state_machine, name, region=self.region, account=self.account)
        clock = self._clock
        start = clock.now()
        record = ExecutionRecord(execution_arn=arn, name=name,
                                 state_machine_arn=state_machine_arn(state_machine, region=self.region,
                                                                     account=self.account),
                                 status=ExecutionStatus.RUNNING, start_date=start, input=to_json(data))
        existing = self.store.create_execution(record)
        if existing is not None:
            # StartExecution is idempotent for a running execution started with the same input.
            if existing.status is ExecutionStatus.RUNNING and json.loads(existing.input) == data:
                return existing
            raise ExecutionAlreadyExists(arn)
        history = HistoryRecorder(self.store, arn, clock=clock.now, max_events=self._max_history_events,
                                  flush_seconds=HISTORY_FLUSH_SECONDS)
        run = Run(history=history, invoker=self.invoker, clock=clock,
                  rng=self._rng, max_map_threads=self._max_map_threads,
                  execution={"Id": arn, "Name": name, "Input": data, "StartTime": iso_time(start),
                             "RoleArn": f"arn:aws:iam::{self.account}:role/local-engine"},
                  state_machine={"Id": record.state_machine_arn, "Name": state_machine},
                  deadline=None if timeout is None else start + timeout, timeout_seconds=timeout,
                  region=self.region, account=self.account)
        branch = Branch(run, 0)
        final = dataclasses.replace(record, status=ExecutionStatus.ABORTED)
        try:
            # AWS links the first state's event to 0, not to ExecutionStarted: the branch starts at 0.
            history.record("ExecutionStarted", {"input": record.input, "inputDetails": {"truncated": False},
                                                "roleArn": run.execution["RoleArn"]}, previous=0)
            output = to_json(program.run(branch, data))
            branch.record("ExecutionSucceeded", {"output": output, "outputDetails": {"truncated": False}})
            final = dataclasses.replace(record, status=ExecutionStatus.SUCCEEDED, output=output,
                                        stop_date=clock.now())
        except ExecutionTimedOut as timed_out:
            branch.record("ExecutionTimedOut", {"error": timed_out.error, "cause": timed_out.cause})
            final = dataclasses.replace(record, status=ExecutionStatus.TIMED_OUT, error=timed_out.error,
                                        cause=timed_out.cause, stop_date=clock.now())
        except StatesFailure as failure:
            final = self._failed(record, branch, failure)
        except Exception as exc:  # noqa: BLE001 - an engine/invoker fault still closes the execution
            failure = StatesFailure(STATES_RUNTIME, f"the local engine failed: {type(exc).__name__}: {exc}")
            final = self._failed(record, branch, failure)
        finally:  # KeyboardInterrupt and the like leave the execution ABORTED, never RUNNING
            history.close()
            if final.stop_date is None:
                final = dataclasses.replace(final, stop_date=clock.now())
            self.store.update_execution(final)
        return final

    def _failed(self, record: ExecutionRecord, branch: Branch, failure: StatesFailure) -> ExecutionRecord:
        branch.record("ExecutionFailed", {"error": failure.error, "cause": failure.cause})
        return dataclasses.replace(record, status=ExecutionStatus.FAILED, error=failure.error,
                                   cause=failure.cause, stop_date=self._clock.now())

    @staticmethod
    def _parse_input(raw: Any, name: str) -> Any:
        if raw is None:
            return {}
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InvalidExecutionInput(f"input of execution {name!r} is not valid JSON: {exc}") from exc
        size = payload_bytes(raw)
        if size > MAX_PAYLOAD_BYTES:
            raise InvalidExecutionInput(f"input of execution {name!r} has {size} bytes, over the "
                                        f"{MAX_PAYLOAD_BYTES}-byte limit")
        return raw

    def describe_execution(self, name_or_arn: str) -> dict[str, Any] | None:
        """DescribeExecution's body for an execution arn (or name: its newest execution); None if unknown."""
        record = self.store.get_execution(name_or_arn)
        return None if record is None else to_describe_execution(record)

    def get_execution_history(self, execution_arn: str) -> dict[str, Any]:
        """GetExecutionHistory's body (every event, oldest first)."""
        return to_aws_history(self.store.get_events(execution_arn))
