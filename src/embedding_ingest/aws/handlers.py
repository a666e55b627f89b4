"""Lambda entrypoints, one per function (the container image's CMD, set per function through
ImageConfig.Command in the template): embedding_ingest.aws.handlers.<entrypoint>.

Each builds its StepContext once per container, runs the step registered under its function name
and returns the step's dict. A failure is RAISED, never returned, so Step Functions sees the
exception's class name as the error (TransientError subclasses are retried by the state machine).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from embedding_ingest.aws.functions import FUNCTIONS
from embedding_ingest.aws.lambda_runtime import configure_lambda_logging, step_context_for
from embedding_ingest.steps.logs import logger, step_log_context
from embedding_ingest.steps.registry import handler_for

LambdaHandler = Callable[[Any, Any], dict]


def _field(event: Any, name: str) -> Any:
    value = event.get(name) if isinstance(event, dict) else None
    return value if isinstance(value, str | int) else None


def run_function(function_name: str, event: Any, context: Any) -> dict:
    """Run one invocation of `function_name` (what every entrypoint does)."""
    configure_lambda_logging()
    fields = {"function": function_name, "execution": _field(event, "execution_id"),
              "batch_id": _field(event, "batch_id"),
              "request_id": getattr(context, "aws_request_id", None)}
    with step_log_context(**fields):
        try:
            step_context = step_context_for(function_name)
        except Exception as exc:
            # The registry logs step failures; a container that cannot even set up is logged here.
            logger.error("function setup failed", extra={"error": type(exc).__name__, "cause": str(exc)})
            raise
        return handler_for(function_name)(event, step_context)


def _entrypoint(function_name: str, entrypoint: str) -> LambdaHandler:
    def handler(event: Any, context: Any) -> dict:
        return run_function(function_name, event, context)

    handler.__name__ = handler.__qualname__ = entrypoint
    handler.__doc__ = f"Lambda handler of {function_name}."
    return handler


ENTRYPOINTS: dict[str, LambdaHandler] = {f.name: _entrypoint(f.name, f.entrypoint) for f in FUNCTIONS}

list_pending = ENTRYPOINTS["embedding-list-pending"]
line_poll = ENTRYPOINTS["embedding-line-poll"]
word_poll = ENTRYPOINTS["embedding-word-poll"]
split_chunks = ENTRYPOINTS["embedding-split-chunks"]
vector_compact = ENTRYPOINTS["embedding-vector-compact"]
create_chunk_groups = ENTRYPOINTS["embedding-create-chunk-groups"]
mark_batches_complete = ENTRYPOINTS["embedding-mark-batches-complete"]
