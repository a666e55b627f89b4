"""Fault injection for the local Batch API engine: which requests fail and how a batch ends.

Set as provider defaults, or per batch through submit metadata (so an end-to-end run can make one
batch expire and another fail): `local_outcome`, `local_fail_custom_ids` (comma-separated),
`local_fail_every`, `local_polls_per_stage`, `local_latency_seconds`, `local_failure_code`,
`local_cancelled_code`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from embedding_ingest.providers.exceptions import ProviderRequestError
from embedding_ingest.providers.request_validation import InputLineError

BatchOutcome = Literal["failed", "expired"]

META_OUTCOME = "local_outcome"
META_FAIL_CUSTOM_IDS = "local_fail_custom_ids"
META_FAIL_EVERY = "local_fail_every"
META_POLLS_PER_STAGE = "local_polls_per_stage"
META_LATENCY_SECONDS = "local_latency_seconds"
META_FAILURE_CODE = "local_failure_code"
META_CANCELLED_CODE = "local_cancelled_code"


class FaultPlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: BatchOutcome | None = None  # None: the batch completes
    fail_custom_ids: tuple[str, ...] = ()  # these requests get a 400 in the error file
    fail_every: int = Field(default=0, ge=0)  # every n-th request (1-based) fails; 0 = none
    polls_per_stage: int = Field(default=1, ge=0)  # retrieves per status; 0 = finish on the first retrieve
    # Time-based instead of poll-based: the batch completes this many seconds after its creation, as
    # OpenAI's do (0 = done at the first poll). None = walk by polls_per_stage.
    latency_seconds: float | None = Field(default=None, ge=0)
    # The batch-level error code of outcome="failed" (e.g. "token_limit_exceeded": a queue-limit refusal).
    failure_code: str = "injected_failure"
    # A batch-level error with no `line` (a queue-limit refusal): set to False to name line 1 instead.
    failure_without_line: bool = True
    # Requests a cancelled batch never ran: in no file (None), or in the error file with `response: null`
    # and this error code. OpenAI documents neither form, so both are exercised.
    cancelled_code: str | None = None

    def with_metadata(self, metadata: Mapping[str, str]) -> FaultPlan:
        """These defaults overridden by any `local_*` keys of a batch's metadata."""
        changes: dict[str, object] = {}
        if metadata.get(META_OUTCOME):
            changes["outcome"] = metadata[META_OUTCOME]
        if metadata.get(META_FAIL_CUSTOM_IDS):
            changes["fail_custom_ids"] = tuple(
                custom_id.strip()
                for custom_id in metadata[META_FAIL_CUSTOM_IDS].split(",")
                if custom_id.strip()
            )
        if metadata.get(META_FAIL_EVERY):
            changes["fail_every"] = metadata[META_FAIL_EVERY]
        if metadata.get(META_POLLS_PER_STAGE):
            changes["polls_per_stage"] = metadata[META_POLLS_PER_STAGE]
        if metadata.get(META_LATENCY_SECONDS):
            changes["latency_seconds"] = metadata[META_LATENCY_SECONDS]
        if metadata.get(META_FAILURE_CODE):
            changes["failure_code"] = metadata[META_FAILURE_CODE]
        if metadata.get(META_CANCELLED_CODE):
            changes["cancelled_code"] = metadata[META_CANCELLED_CODE]
        if not changes:
            return self
        try:
            return FaultPlan.model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ProviderRequestError(f"bad local fault options in batch metadata: {problems}") from None

    def request_fails(self, position: int, custom_id: str) -> bool:
        """`position` is the request's 1-based position in the input file."""
        return custom_id in self.fail_custom_ids or (self.fail_every > 0 and position % self.fail_every == 0)

    def injected_failure(self) -> InputLineError:
        return InputLineError(
            None if self.failure_without_line else 1,
            "batch failed by fault injection (local_outcome=failed)", None, self.failure_code,
        )
