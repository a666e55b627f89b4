"""An in-process Batch API: OpenAI-shaped file and batch objects persisted under a root directory.

Both the local provider and the test OpenAI server run on this engine, so they behave identically.
Layout: files/<file_id> (content) + files/<file_id>.json (file object); batches/<batch_id>.json
(batch object + engine state) guarded by batches/<batch_id>.lock. Every write is atomic, so one process
can submit and another retrieve, and concurrent retrieves never tear a record.

A batch advances one stage per `polls_per_stage` retrieves (0 = straight to the end):
validating -> in_progress -> finalizing -> completed, with faults injected from a `FaultPlan`; or, when
the plan sets `latency_seconds`, by the clock (`now`, injectable so tests never sleep): it is in_progress
until that many seconds after its creation and finished from then on, whoever looks (a retrieve or the
listing), and expired (with partial output) once past its 24 h `expires_at`, as OpenAI's are.

As OpenAI does (openai-openapi `Batch`; the Batch guide): a request without `dimensions` gets its model's
native width (providers/models.py) and one with `dimensions` for a model that takes none fails with
HTTP 400; `encoding_format` is honoured per request; a finished batch carries `usage`; a cancelled or
expired batch has the output of the requests that ran; never-ran requests of a cancelled batch are in no
file, or (FaultPlan.cancelled_code) in the error file with `response: null`.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

from embedding_ingest.providers.atomic_files import (
    atomic_write,
    create_exclusive,
    dump_json,
    exclusive_lock,
    link_exclusive,
    load_json,
    scratch_file,
)
from embedding_ingest.providers.batch_files import EMBEDDINGS_URL
from embedding_ingest.providers.encoder import HashedNgramEncoder
from embedding_ingest.providers.exceptions import (
    ProviderRequestError,
    UnknownProviderBatchError,
    UnknownProviderFileError,
)
from embedding_ingest.providers.faults import FaultPlan
from embedding_ingest.providers.local_results import BatchResults, run_requests
from embedding_ingest.providers.request_validation import parse_request_file

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # ids become file names: nothing else gets near the disk
COMPLETION_WINDOW_SECONDS = 24 * 3600
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
CANCELLABLE_STATUSES = frozenset({"validating", "in_progress", "finalizing"})


def _digest(*parts: str, size: int = 12) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=size).hexdigest()


class LocalBatchEngine:
    def __init__(self, root: Path, *, default_dimensions: int, faults: FaultPlan | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.now = now
        self.default_dimensions = default_dimensions
        self.faults = faults or FaultPlan()
        self._files = self.root / "files"
        self._batches = self.root / "batches"
        self._files.mkdir(parents=True, exist_ok=True)
        self._batches.mkdir(parents=True, exist_ok=True)
        self._encoders: dict[int, HashedNgramEncoder] = {}

    # -- files ------------------------------------------------------------------------------------
    def upload(self, content: bytes, *, filename: str, purpose: str, file_id: str | None = None
               ) -> dict[str, Any]:
        """Store a file as `file_id`; without one, content-addressed (the same bytes, the same file: the
        local provider's choice; OpenAI makes a new file per upload, so the fake passes a fresh id)."""
        file_id = file_id or f"file-{_digest(purpose, hashlib.sha256(content).hexdigest())}"
        return self._store_file(file_id, content, filename=filename, purpose=purpose)

    def _store_file(self, file_id: str, content: bytes, *, filename: str, purpose: str) -> dict[str, Any]:
        create_exclusive(self._files / file_id, content)  # content first: a listed file is always readable
        return self._describe_file(file_id, len(content), filename=filename, purpose=purpose)

    def _store_written(self, file_id: str, handle: BinaryIO, path: Path, *, filename: str) -> str:
        """A batch output or error file written to a scratch file, put in place; its id."""
        link_exclusive(handle, path, self._files / file_id)
        size = (self._files / file_id).stat().st_size
        return self._describe_file(file_id, size, filename=filename, purpose="batch_output")["id"]

    def _describe_file(self, file_id: str, size: int, *, filename: str, purpose: str) -> dict[str, Any]:
        file_object = {
            "id": file_id,
            "object": "file",
            "bytes": size,
            "created_at": int(self.now()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        create_exclusive(self._files / f"{file_id}.json", dump_json(file_object))
        return self.file_object(file_id)

    def _file_path(self, file_id: str) -> Path:
        path = self._files / file_id
        if not _SAFE_ID.match(file_id) or not (self._files / f"{file_id}.json").exists():
            raise UnknownProviderFileError(file_id)
        return path

    def file_object(self, file_id: str) -> dict[str, Any]:
        self._file_path(file_id)
        return load_json(self._files / f"{file_id}.json")

    def file_content(self, file_id: str) -> bytes:
        return self._file_path(file_id).read_bytes()

    @contextmanager
    def open_file_content(self, file_id: str) -> Iterator[IO[bytes]]:
        """The file's content as an open binary file (read it in pieces). Raises UnknownProviderFileError."""
        try:
            handle = self._file_path(file_id).open("rb")
        except FileNotFoundError:
            raise UnknownProviderFileError(file_id) from None
        with handle:
            yield handle

    def delete_file(self, file_id: str) -> None:
        """Forget a file (OpenAI deletes batch files 30 days after completion); unknown ids are ignored."""
        if _SAFE_ID.match(file_id):
            (self._files / f"{file_id}.json").unlink(missing_ok=True)
            (self._files / file_id).unlink(missing_ok=True)

    # -- batches ----------------------------------------------------------------------------------
    def _record_path(self, batch_id: str) -> Path:
        if not _SAFE_ID.match(batch_id):
            raise UnknownProviderBatchError(batch_id)
        return self._batches / f"{batch_id}.json"

    def _load(self, batch_id: str) -> dict[str, Any]:
        try:
            return load_json(self._record_path(batch_id))
        except FileNotFoundError:
            raise UnknownProviderBatchError(batch_id) from None

    def batch_object(self, batch_id: str) -> dict[str, Any]:
        """The batch as it stands, without polling it. Raises UnknownProviderBatchError."""
        return self._load(batch_id)["batch"]

    def forget_batch(self, batch_id: str) -> None:
        """Make a batch unknown, as batches that vanish at OpenAI are (404 from then on)."""
        self._record_path(batch_id).unlink(missing_ok=True)

    def create_batch(
        self,
        *,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: Mapping[str, str] | None,
        batch_id: str,
    ) -> tuple[dict[str, Any], bool]:
        """(batch, created). An existing `batch_id` is returned as it is, with created=False."""
        if endpoint != EMBEDDINGS_URL:
            raise ProviderRequestError(f"endpoint {endpoint!r} is not supported here (only {EMBEDDINGS_URL})")
        if completion_window != "24h":
            raise ProviderRequestError(f"completion_window must be '24h', got {completion_window!r}")
        self.file_object(input_file_id)  # raises for an unknown file
        metadata = dict(metadata or {})
        if len(metadata) > 16 or any(len(k) > 64 or len(str(v)) > 512 for k, v in metadata.items()):
            raise ProviderRequestError(
                "metadata takes at most 16 keys of <= 64 chars with values of <= 512 chars"
            )
        now = int(self.now())
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": input_file_id,
            "completion_window": completion_window,
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + COMPLETION_WINDOW_SECONDS,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": metadata,
            "model": None,
        }
        faults = self.faults.with_metadata(metadata)  # raises on a bad fault option, before anything exists
        record = {
            "batch": batch,
            "faults": faults.model_dump(mode="json"),
            "stage_polls": 0,
            "seq": time.time_ns(),  # listing order only: real time, so it never repeats
        }
        created = create_exclusive(self._record_path(batch_id), dump_json(record))
        return self._load(batch_id)["batch"], created

    def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        """Each call is one poll: it may move the batch on by a stage."""
        path = self._record_path(batch_id)
        with exclusive_lock(path.with_suffix(".lock")):
            record = self._load(batch_id)
            if record["batch"]["status"] not in TERMINAL_STATUSES:
                self._poll(record)
                atomic_write(path, dump_json(record))
        return record["batch"]

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        path = self._record_path(batch_id)
        with exclusive_lock(path.with_suffix(".lock")):
            record = self._load(batch_id)
            batch = record["batch"]
            if batch["status"] in ("cancelling", "cancelled"):
                return batch
            if batch["status"] not in CANCELLABLE_STATUSES:
                raise ProviderRequestError(f"batch {batch_id!r} is {batch['status']} and cannot be cancelled")
            record["cancelled_from"] = batch["status"]
            batch["status"], batch["cancelling_at"] = "cancelling", int(self.now())
            atomic_write(path, dump_json(record))
        return batch

    def list_batches(self) -> list[dict[str, Any]]:
        """Newest first, as the Batch API lists them. Clock-driven batches are brought up to date;
        poll-driven ones are not moved (a listing is not a poll)."""
        records = [load_json(path) for path in self._batches.glob("*.json")]
        records.sort(key=lambda record: (record["seq"], record["batch"]["id"]), reverse=True)
        batches = []
        for record in records:
            faults = FaultPlan.model_validate(record["faults"])
            if faults.latency_seconds is not None and record["batch"]["status"] not in TERMINAL_STATUSES:
                record = self._refresh_by_clock(record["batch"]["id"])
            batches.append(record["batch"])
        return batches

    def _refresh_by_clock(self, batch_id: str) -> dict[str, Any]:
        path = self._record_path(batch_id)
        with exclusive_lock(path.with_suffix(".lock")):
            record = self._load(batch_id)
            if record["batch"]["status"] not in TERMINAL_STATUSES:
                self._walk_by_clock(record, FaultPlan.model_validate(record["faults"]))
                atomic_write(path, dump_json(record))
        return record

    def encoder(self, dimensions: int | None = None) -> HashedNgramEncoder:
        dimensions = dimensions or self.default_dimensions
        if dimensions not in self._encoders:
            self._encoders[dimensions] = HashedNgramEncoder(dimensions)
        return self._encoders[dimensions]

    def embed(self, texts: Sequence[str], dimensions: int | None = None,
              model: str | None = None) -> np.ndarray:
        """float32 rows: all-MiniLM-L6-v2-int8's (a real model, 384 dimensions only) when `model` names
        it, else the hashed n-gram encoder's at `dimensions` (None: the engine's default width)."""
        from embedding_ingest.providers import minilm

        if model == minilm.MODEL_NAME:
            if dimensions not in (None, minilm.DIMENSIONS):
                raise ProviderRequestError(f"{model} makes {minilm.DIMENSIONS}-dimensional vectors, "
                                           f"not {dimensions}")
            return minilm.encoder().encode(list(texts))
        return self.encoder(dimensions).encode(texts)

    # -- the status walk --------------------------------------------------------------------------
    def _poll(self, record: dict[str, Any]) -> None:
        faults = FaultPlan.model_validate(record["faults"])
        if faults.latency_seconds is not None:
            self._walk_by_clock(record, faults)
            return
        record["stage_polls"] += 1
        while (
            record["batch"]["status"] not in TERMINAL_STATUSES
            and record["stage_polls"] >= faults.polls_per_stage
        ):
            self._advance(record, faults)
            record["stage_polls"] = 0
            if faults.polls_per_stage > 0:
                break

    def _walk_by_clock(self, record: dict[str, Any], faults: FaultPlan) -> None:
        """Validation happens at once; the rest waits for created_at + latency_seconds."""
        batch = record["batch"]
        due = batch["created_at"] + (faults.latency_seconds or 0)
        if batch["status"] == "validating":
            self._advance(record, faults)
        expires = batch["expires_at"]
        if batch["status"] == "in_progress" and self.now() >= expires and due > expires:
            self._expire(record, faults)
        while batch["status"] not in TERMINAL_STATUSES and (self.now() >= due or batch["status"] ==
                                                             "cancelling"):
            self._advance(record, faults)

    def _advance(self, record: dict[str, Any], faults: FaultPlan) -> None:
        batch = record["batch"]
        now = int(self.now())
        status = batch["status"]
        if status == "validating":
            requests, errors = parse_request_file(
                self.file_content(batch["input_file_id"]), batch["endpoint"]
            )
            if not errors and faults.outcome == "failed":
                errors = [faults.injected_failure()]
            if errors:
                batch.update(
                    status="failed",
                    failed_at=now,
                    errors={"object": "list", "data": [error.as_openai() for error in errors]},
                )
                return
            batch.update(status="in_progress", in_progress_at=now, model=requests[0].model)
            batch["request_counts"]["total"] = len(requests)
        elif status == "in_progress" and faults.outcome == "expired":
            self._expire(record, faults)
        elif status == "in_progress":
            batch.update(status="finalizing", finalizing_at=now)
        elif status == "finalizing":
            self._finish(batch, faults, "completed", executed_share=1.0, unexecuted_code=None)
            batch["completed_at"] = now
        elif status == "cancelling":
            # Cancelled while running: half ran (partial output), the rest simply never ran (in no file).
            share = 0.0 if record.get("cancelled_from") == "validating" else 0.5
            self._finish(batch, faults, "cancelled", executed_share=share,
                         unexecuted_code=faults.cancelled_code)
            batch["cancelled_at"] = now

    def _expire(self, record: dict[str, Any], faults: FaultPlan) -> None:
        """Past the completion window: half ran (their output is kept), the rest never will."""
        batch = record["batch"]
        self._finish(batch, faults, "expired", executed_share=0.5, unexecuted_code="batch_expired")
        batch["expired_at"] = int(self.now())

    def _finish(
        self,
        batch: dict[str, Any],
        faults: FaultPlan,
        status: str,
        *,
        executed_share: float,
        unexecuted_code: str | None,
    ) -> None:
        requests, errors = parse_request_file(self.file_content(batch["input_file_id"]), batch["endpoint"])
        if errors:  # only reachable when cancelled during validation
            requests = []
        with scratch_file(self._files) as (output_path, output), \
                scratch_file(self._files) as (errors_path, error_file):
            results: BatchResults = run_requests(
                batch["id"],
                requests,
                faults,
                self.embed,
                executed=int(len(requests) * executed_share),
                unexecuted_code=unexecuted_code,
                output=output,
                errors=error_file,
            )
            if results.completed:
                batch["output_file_id"] = self._store_written(
                    f"file-{_digest(batch['id'], 'output')}", output, output_path,
                    filename=f"{batch['id']}_output.jsonl")
            if results.failed:
                batch["error_file_id"] = self._store_written(
                    f"file-{_digest(batch['id'], 'error')}", error_file, errors_path,
                    filename=f"{batch['id']}_error.jsonl")
        batch["status"] = status
        batch["request_counts"] = {
            "total": len(requests),
            "completed": results.completed,
            "failed": results.failed,
        }
        # openai-openapi `BatchUsage`: what the requests that ran consumed (embeddings have no output tokens).
        batch["usage"] = {"input_tokens": results.input_tokens, "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0},
                          "total_tokens": results.input_tokens}
