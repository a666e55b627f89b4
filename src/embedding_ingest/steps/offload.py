"""Event validation and the S3-offloading rules shared by the steps (payload limit, lessons 2 and 5).

Offloaded payloads are plain JSON written with `ObjectStore.put_json` (sorted keys, compact), so the
same content always becomes the same bytes and a rerun rewrites an identical object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from embedding_ingest.steps.contracts import Chunk, IntermediateRef, PollFailure, PollOutcome, PollResult
from embedding_ingest.steps.exceptions import OffloadedIndexError, StepInputError
from embedding_ingest.stores.exceptions import CorruptObjectError
from embedding_ingest.stores.ports import ObjectStore

EventT = TypeVar("EventT", bound=BaseModel)
T = TypeVar("T")

# Shapes of the offloaded JSON objects.
POLL_OUTCOMES = TypeAdapter(list[PollOutcome])  # chunk_groups/{batch_id}/poll_results.json
CHUNK_LIST = TypeAdapter(list[Chunk])  # chunks/{batch_id}/chunks.json
GROUP_LIST = TypeAdapter(list[list[IntermediateRef]])  # chunk_groups/{batch_id}/groups.json


def describe_validation_error(exc: ValidationError, limit: int = 10) -> str:
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_event(model: type[EventT], event: Any, step: str) -> EventT:
    """Validate `event`; a bad one raises StepInputError naming the step and every bad field."""
    if not isinstance(event, dict):
        raise StepInputError(f"{step}: the event must be a JSON object, got {type(event).__name__}")
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        raise StepInputError(f"{step}: invalid event: {describe_validation_error(exc)}") from exc


def read_offloaded(objects: ObjectStore, key: str, adapter: TypeAdapter[T]) -> T:
    """Read JSON written by an earlier step; a wrong shape is reported as a corrupt object by key."""
    raw = objects.get_json(key)
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        raise CorruptObjectError(key, describe_validation_error(exc)) from exc


def pick(items: Sequence[T], index: int, key: str) -> T:
    if not 0 <= index < len(items):
        raise OffloadedIndexError(key, index, len(items))
    return items[index]


def json_size(value: Any) -> int:
    """Bytes of the compact JSON `value` becomes in state data."""
    return len(TypeAdapter(Any).dump_json(value))


def load_poll_outcomes(objects: ObjectStore, inline: list[PollResult | PollFailure] | None,
                       key: str | None, step: str) -> list[PollResult | PollFailure]:
    """poll_results from the event, or from the object the event names (inline wins when both)."""
    if inline is not None:
        return inline
    if key:
        return read_offloaded(objects, key, POLL_OUTCOMES)
    raise StepInputError(f"{step}: the event has neither poll_results nor poll_results_s3_key")


def successful_polls(outcomes: Sequence[PollResult | PollFailure]) -> list[PollResult]:
    """Caught poll failures are skipped: their batches stay active and the next execution retries."""
    return [o for o in outcomes if isinstance(o, PollResult)]
