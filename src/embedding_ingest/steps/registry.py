"""Every step by its Lambda function name (the reference's names), with `operation` dispatch for the
Lambdas that host several sub-handlers. Who builds the StepContext is the caller's business (the
Lambda container, the local engine's backend): the steps import nothing above them."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping

from embedding_ingest.steps.chunks import load_chunks_from_s3, split_chunks
from embedding_ingest.steps.compact import merge_chunk_group, process_chunk
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.exceptions import StepInputError, UnknownOperationError
from embedding_ingest.steps.final_merge import final_merge
from embedding_ingest.steps.groups import create_chunk_groups, load_groups_from_s3
from embedding_ingest.steps.list_pending import list_pending
from embedding_ingest.steps.logs import logger, step_log_context
from embedding_ingest.steps.mark_complete import mark_batches_complete
from embedding_ingest.steps.poll import poll
from embedding_ingest.stores.records import ItemKind

Handler = Callable[[dict, StepContext], dict]


def _with_operations(function_name: str, operations: Mapping[str | None, Handler]) -> Handler:
    """One Lambda, several sub-handlers chosen by the event's `operation` (None = the default one)."""

    def dispatch(event: dict, ctx: StepContext) -> dict:
        operation = event.get("operation") if isinstance(event, dict) else None
        handler = operations.get(operation)
        if handler is None:
            known = sorted(op if op is not None else "(none)" for op in operations)
            raise UnknownOperationError(f"{function_name}: unknown operation {operation!r}; "
                                        f"expected one of {known}")
        return handler(event, ctx)

    return dispatch


def _logged(function_name: str, handler: Handler) -> Handler:
    """Log each invocation's sizes and outcome with the function and execution it belongs to."""

    @functools.wraps(handler)
    def run(event: dict, ctx: StepContext) -> dict:
        fields = {}
        if isinstance(event, dict):
            fields = {"execution": event.get("execution_id") or event.get("batch_id"),
                      "operation": event.get("operation")}
        with step_log_context(function=function_name, **fields):
            logger.info("step started", extra={"input_bytes": len(json.dumps(event, default=str))})
            try:
                result = handler(event, ctx)
            except Exception as exc:
                logger.error("step failed", extra={"error": type(exc).__name__, "cause": str(exc)})
                raise
            logger.info("step finished", extra={"output_bytes": len(json.dumps(result))})
            return result

    return run


_RAW: dict[str, Handler] = {
    "embedding-list-pending": list_pending,
    "embedding-line-poll": functools.partial(poll, expected_kind=ItemKind.LINE),
    "embedding-word-poll": functools.partial(poll, expected_kind=ItemKind.WORD),
    "embedding-split-chunks": _with_operations("embedding-split-chunks", {
        None: split_chunks, "split_chunks": split_chunks, "load_chunks_from_s3": load_chunks_from_s3}),
    "embedding-vector-compact": _with_operations("embedding-vector-compact", {
        "process_chunk": process_chunk, "merge_chunk_group": merge_chunk_group,
        "final_merge": final_merge}),
    "embedding-create-chunk-groups": _with_operations("embedding-create-chunk-groups", {
        None: create_chunk_groups, "create_chunk_groups": create_chunk_groups,
        "load_groups_from_s3": load_groups_from_s3}),
    "embedding-mark-batches-complete": mark_batches_complete,
}

HANDLERS: dict[str, Handler] = {name: _logged(name, handler) for name, handler in _RAW.items()}


def handler_for(function_name: str) -> Handler:
    try:
        return HANDLERS[function_name]
    except KeyError:
        raise StepInputError(f"no step is named {function_name!r}; known: {sorted(HANDLERS)}") from None
