"""Lambda entrypoints, one per function (the container image's CMD, set per function through
ImageConfig.Command in the template): embedding_ingest.aws.functions.handlers.<entrypoint>.

Each builds its StepContext once per container, runs the step registered under its function name
and returns the step's dict. A failure is RAISED, never returned, so Step Functions sees the
exception's class name as the error (TransientError subclasses are retried by the state machine).
Every entrypoint wears observability.instrumented (Powertools: JSON logs, metrics, traces).

Two more run on EventBridge Scheduler schedules, outside the state machines: `submit` (new items to
the provider as batches) and `start_execution` (one execution per schedule slot; aws/functions/scheduled.py).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from embedding_ingest.aws.function_table import FUNCTIONS, START_EXECUTION, SUBMIT
from embedding_ingest.aws.functions.container import lambda_settings, step_context_for
from embedding_ingest.aws.functions.observability import instrumented
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.steps.logs import logger, step_log_context
from embedding_ingest.steps.registry import handler_for

LambdaHandler = Callable[[Any, Any], dict]


def _field(event: Any, name: str) -> Any:
    value = event.get(name) if isinstance(event, dict) else None
    return value if isinstance(value, str | int) else None


def run_function(function_name: str, event: Any, context: Any) -> dict:
    """Run one invocation of the step `function_name` (what every step entrypoint does)."""
    return _run(function_name, event, context,
                lambda: handler_for(function_name)(event, step_context_for(function_name)))


def _run(function_name: str, event: Any, context: Any, work: Callable[[], dict]) -> dict:
    fields = {"function": function_name, "execution": _field(event, "execution_id"),
              "batch_id": _field(event, "batch_id"),
              "request_id": getattr(context, "aws_request_id", None)}
    with step_log_context(**fields):
        try:
            if function_name in STEP_FUNCTION_NAMES:
                step_context_for(function_name)  # set up first, so a broken container is logged as such
        except Exception as exc:
            # The registry logs step failures; a container that cannot even set up is logged here.
            logger.error("function setup failed", extra={"error": type(exc).__name__, "cause": str(exc)})
            raise
        return work()


def _entrypoint(function_name: str, entrypoint: str) -> LambdaHandler:
    def handler(event: Any, context: Any) -> dict:
        return run_function(function_name, event, context)

    handler.__name__ = handler.__qualname__ = entrypoint
    handler.__doc__ = f"Lambda handler of {function_name}."
    return instrumented(function_name, handler)


STEP_FUNCTION_NAMES = frozenset(f.name for f in FUNCTIONS)
ENTRYPOINTS: dict[str, LambdaHandler] = {f.name: _entrypoint(f.name, f.entrypoint) for f in FUNCTIONS}

list_pending = ENTRYPOINTS["embedding-list-pending"]
line_poll = ENTRYPOINTS["embedding-line-poll"]
word_poll = ENTRYPOINTS["embedding-word-poll"]
split_chunks = ENTRYPOINTS["embedding-split-chunks"]
vector_compact = ENTRYPOINTS["embedding-vector-compact"]
create_chunk_groups = ENTRYPOINTS["embedding-create-chunk-groups"]
mark_batches_complete = ENTRYPOINTS["embedding-mark-batches-complete"]


def _logged(function_name: str, outcome: dict) -> dict:
    logger.info(f"{function_name} done", extra={"result": outcome})
    return outcome


@functools.partial(instrumented, SUBMIT)
def submit(event: Any, context: Any) -> dict:
    """Lambda handler of embedding-submit: submit every un-embedded item of `event["kinds"]` (default
    line and word) within the submission budgets. Returns {kind: {"batches", "items", "refused"}}."""
    from embedding_ingest.pipeline.schedule import parse_kinds, submit_round

    def work() -> dict:
        if event is not None and not isinstance(event, dict):
            raise InvalidInputError(f"submit event must be a JSON object, got {type(event).__name__}")
        kinds = parse_kinds((event or {}).get("kinds") or ["line", "word"])
        step_context = step_context_for(SUBMIT)
        return _logged(SUBMIT, submit_round(kinds, step_context.ledger, step_context.provider,
                                            step_context.settings))

    return _run(SUBMIT, event, context, work)


@functools.partial(instrumented, START_EXECUTION)
def start_execution(event: Any, context: Any) -> dict:
    """Lambda handler of embedding-start-execution: start `event["workflow"]` for the schedule slot
    `event["scheduled_time"]` under a name derived from it (aws/functions/scheduled.py), at most once
    per slot."""
    from embedding_ingest.aws.functions.scheduled import start_slot_execution
    from embedding_ingest.backends import aws_client

    def work() -> dict:
        client = aws_client("stepfunctions", lambda_settings())
        return _logged(START_EXECUTION, start_slot_execution(client, event, os.environ))

    return _run(START_EXECUTION, event, context, work)
