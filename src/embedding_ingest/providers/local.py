"""The embedded default provider: the Batch API run locally on the hashed n-gram encoder.

State lives in files under `root` (see local_batches), so a batch submitted by one process can be
polled and downloaded by another. Provider batch ids derive from our batch_id and an attempt number:
submitting the same batch_id again finds the live batch instead of making a second one, while a batch
that ended failed/expired/cancelled is replaced by the next attempt.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from embedding_ingest.providers.base import ProviderBatch, submit_in_steps
from embedding_ingest.providers.batch_files import EMBEDDINGS_URL, check_batch_limits
from embedding_ingest.providers.batch_objects import to_provider_batch
from embedding_ingest.providers.encoder import DEFAULT_DIMENSIONS, LOCAL_MODEL_NAME
from embedding_ingest.providers.exceptions import UnknownProviderBatchError
from embedding_ingest.providers.faults import BatchOutcome, FaultPlan
from embedding_ingest.providers.local_batches import LocalBatchEngine

REPLACEABLE_STATUSES = frozenset({"failed", "expired", "cancelled"})


def local_provider_batch_id(batch_id: str, attempt: int) -> str:
    digest = hashlib.blake2b(f"{batch_id}\x1f{attempt}".encode(), digest_size=12).hexdigest()
    return f"batch_{digest}"


class LocalBatchProvider:
    name = "local"

    def __init__(
        self,
        root: Path,
        *,
        model: str = LOCAL_MODEL_NAME,
        dimensions: int = DEFAULT_DIMENSIONS,
        polls_per_stage: int = 1,
        fail_custom_ids: Iterable[str] = (),
        fail_every: int = 0,
        outcome: BatchOutcome | None = None,
        latency_seconds: float | None = None,
    ) -> None:
        self.root = Path(root)
        self.model = model
        self.dimensions = dimensions
        faults = FaultPlan(
            outcome=outcome,
            fail_custom_ids=tuple(fail_custom_ids),
            fail_every=fail_every,
            polls_per_stage=polls_per_stage,
            latency_seconds=latency_seconds,
        )
        self.engine = LocalBatchEngine(self.root, default_dimensions=dimensions, faults=faults)

    def __repr__(self) -> str:
        return (
            f"LocalBatchProvider(root={str(self.root)!r}, model={self.model!r}, dimensions={self.dimensions})"
        )

    def submit(self, batch_id: str, requests_jsonl: bytes, metadata: Mapping[str, str]) -> ProviderBatch:
        """find_live, else upload and create."""
        check_batch_limits(requests_jsonl)  # before any call
        return submit_in_steps(self, batch_id, requests_jsonl, metadata)

    def upload(self, batch_id: str, requests_jsonl: bytes) -> str:
        check_batch_limits(requests_jsonl)
        return self.engine.upload(requests_jsonl, filename=f"{batch_id}.jsonl", purpose="batch")["id"]

    def find_live(self, batch_id: str) -> ProviderBatch | None:
        for attempt in itertools.count():
            try:
                batch = self.engine.batch_object(local_provider_batch_id(batch_id, attempt))
            except UnknownProviderBatchError:
                return None
            if batch["status"] not in REPLACEABLE_STATUSES:
                return to_provider_batch(batch)
        raise AssertionError("unreachable")  # itertools.count() never ends

    def create(self, batch_id: str, input_file_id: str, metadata: Mapping[str, str]) -> ProviderBatch:
        batch_metadata = {**metadata, "batch_id": batch_id}
        for attempt in itertools.count():
            batch, created = self.engine.create_batch(
                input_file_id=input_file_id,
                endpoint=EMBEDDINGS_URL,
                completion_window="24h",
                metadata=batch_metadata,
                batch_id=local_provider_batch_id(batch_id, attempt),
            )
            if created or batch["status"] not in REPLACEABLE_STATUSES:
                return to_provider_batch(batch)
        raise AssertionError("unreachable")  # itertools.count() never ends

    def retrieve(self, provider_batch_id: str) -> ProviderBatch:
        return to_provider_batch(self.engine.retrieve_batch(provider_batch_id))

    def list_batches(self, *, created_after: float) -> list[ProviderBatch]:
        """Newest first, down to `created_after`; clock-driven batches show their current status."""
        listed = []
        for batch in self.engine.list_batches():
            if batch["created_at"] < int(created_after):
                break
            listed.append(to_provider_batch(batch))
        return listed

    @contextmanager
    def open_file(self, file_id: str) -> Iterator[Iterator[bytes]]:
        """The file's content in chunks, read as they are consumed. Raises UnknownProviderFileError."""
        with self.engine.open_file_content(file_id) as handle:
            yield iter(lambda: handle.read(1 << 20), b"")

    def cancel(self, provider_batch_id: str) -> ProviderBatch:
        return to_provider_batch(self.engine.cancel_batch(provider_batch_id))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.engine.embed(list(texts), self.dimensions, self.model)
