"""What two runs of one scenario are compared on, reduced to what must not depend on the engine:
final status, output (or error), states entered, and the published snapshot's records.

Execution-specific values are normalised away: ARNs and account ids, the workspace's own paths (each
side runs in its own directory), timings, snapshot version ids (a digest of a Chroma directory, which
holds build times), and the Lambda runtime's requestId/stackTrace in error causes.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pipeline import Workspace

from embedding_ingest.pipeline.engine_store import execution_history
from embedding_ingest.snapshots import iter_published_pages
from embedding_ingest.stores.records import ExecutionRecord, ItemKind

_ARN = re.compile(r"arn:aws:[a-z-]+:[a-z0-9-]*:\d{12}:[^\s\"',]+")
_TIMINGS = frozenset({"processing_time_seconds"})
_VERSION_KEYS = frozenset({"snapshot_version", "parent_version"})


@dataclass(frozen=True)
class Outcome:
    """One finished execution, as DescribeExecution and GetExecutionHistory describe it."""

    status: str
    output: Any
    error: str | None
    cause: str | None
    events: list[dict[str, Any]]


def moto_outcome(run: dict[str, Any]) -> Outcome:
    described = run["describe"]
    output = described.get("output")
    return Outcome(status=described["status"], output=None if output is None else json.loads(output),
                   error=described.get("error"), cause=described.get("cause"), events=run["events"])


def local_outcome(workspace: Workspace, record: ExecutionRecord) -> Outcome:
    events = execution_history(workspace.ledger.get_events(record.execution_arn))["events"]
    return Outcome(status=record.status.value,
                   output=None if record.output is None else json.loads(record.output),
                   error=record.error, cause=record.cause, events=events)


class Normaliser:
    """Rewrites one side's values so equal behaviour gives equal data."""

    def __init__(self, workspace: Workspace) -> None:
        self._paths = sorted({str(workspace.settings.home.resolve()), str(workspace.settings.home),
                              workspace.objects.location}, key=len, reverse=True)
        self._versions: dict[str, str] = {}

    def text(self, value: str) -> str:
        for path in self._paths:
            value = value.replace(path, "<workspace>")
        return _ARN.sub("<arn>", value)

    def cause(self, cause: str | None) -> Any:
        """A Lambda error cause keeps what the function said (type and message), not the runtime's ids."""
        if cause is None:
            return None
        try:
            parsed = json.loads(cause)
        except json.JSONDecodeError:
            return self.text(cause)
        if isinstance(parsed, dict) and "errorType" in parsed:
            message = self.text(str(parsed.get("errorMessage")))
            return {"errorType": parsed["errorType"], "errorMessage": message}
        return self.value(parsed)

    def version(self, version: str) -> str:
        return self._versions.setdefault(version, f"<version-{len(self._versions) + 1}>")

    def value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self._field(key, item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def _field(self, key: str, item: Any) -> Any:
        if key in _TIMINGS and isinstance(item, int | float):
            return "<seconds>"
        if key in _VERSION_KEYS and isinstance(item, str):
            return self.version(item)
        if key == "Cause" and isinstance(item, str):
            return self.cause(item)
        return self.value(item)

    def outcome(self, outcome: Outcome) -> dict[str, Any]:
        return {"status": outcome.status, "output": self.value(outcome.output),
                "error": outcome.error, "cause": self.cause(outcome.cause)}


def entered_states(outcome: Outcome) -> list[str]:
    """Names of the states entered, in history order (Map iterations interleave freely)."""
    return [event["stateEnteredEventDetails"]["name"] for event in outcome.events
            if event["type"].endswith("StateEntered")]


def top_level_path(outcome: Outcome, definition: dict[str, Any]) -> list[str]:
    """The states of the top-level flow entered, in order: deterministic on any correct engine."""
    return [name for name in entered_states(outcome) if name in definition["States"]]


def top_level_data(outcome: Outcome, definition: dict[str, Any], normaliser: Normaliser) -> list[tuple]:
    """(event type, state, its input or output) for every top-level state entered and exited, in order:
    the data each state saw and produced, so a path or template evaluated differently shows where."""
    steps = []
    for event in outcome.events:
        details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails")
        if details and details["name"] in definition["States"]:
            data = details.get("input", details.get("output"))
            steps.append((event["type"], details["name"],
                          None if data is None else normaliser.value(json.loads(data))))
    return steps


def all_entered(outcome: Outcome) -> Counter:
    """How many times each state was entered, Map iterations included."""
    return Counter(entered_states(outcome))


def event_types(outcome: Outcome) -> Counter:
    """How many events of each type the history holds (their order interleaves across Map iterations)."""
    return Counter(event["type"] for event in outcome.events)


def failed_functions(outcome: Outcome) -> int:
    """Failed Lambda invocations: TaskFailed (lambda:invoke, our definitions) or LambdaFunctionFailed
    (a function ARN as Resource)."""
    return sum(event["type"] in ("TaskFailed", "LambdaFunctionFailed") for event in outcome.events)


def published_records(workspace: Workspace, kind: ItemKind) -> dict[str, tuple[str, dict, tuple]]:
    """Every record of the published snapshot of `kind`: id -> (document, metadata, embedding).

    The metadata's `revision` is left out: it orders submissions by their submit time (see
    snapshots/revisions.py), so two workspaces submitting the same items never share it.
    """
    version = workspace.ledger.get_published(kind.database)
    if version is None:
        return {}
    records: dict[str, tuple[str, dict, tuple]] = {}
    for page in iter_published_pages(workspace.objects, version, workspace.settings):
        for index, record_id in enumerate(page.ids):
            assert record_id not in records, f"id {record_id!r} appears twice in {version.database}"
            metadata = {key: value for key, value in page.metadatas[index].items() if key != "revision"}
            records[record_id] = (page.documents[index], metadata,
                                  tuple(page.embeddings[index].tolist()))
    return records


def ledger_state(workspace: Workspace, kind: ItemKind) -> dict[str, Any]:
    """Item statuses and each batch's status: what marking (or not marking) left behind."""
    batches = workspace.ledger.list_batches(batch_type=kind.batch_type)
    return {"items": dict(workspace.statuses(kind)),
            "batches": sorted((batch.batch_id, str(batch.status)) for batch in batches)}
