"""Revisions and deletions: how deltas carry updates and removals, and how "newer wins" is decided.

The delta / publish contract (issue 10):
- Every record a poll writes carries `metadata["revision"]`, a string that sorts in submission order:
  `"{submitted_at:020.6f}#{batch_id}"` of the batch that embedded it (see `revision_of`).
- A delta (or an intermediate merged from deltas) may also carry *deletions*: `{item_id: revision}`,
  the revision of the deletion batch that removed the item from its receipt. In the flat layout they
  live in `deletions.json` beside the records (inside the same content-addressed archive), and the
  snapshot manifest says how many (`SnapshotManifest.deletions`).
- Wherever two entries for one id meet (a merge of deltas, an intermediate meeting the published
  version), the one with the greater revision wins, whether record or deletion; on equal revisions the
  later source wins (the behaviour from before revisions existed). A record without a revision has
  revision "" and so loses to every revisioned entry. Entries that lose are counted as `superseded`,
  so every merge still accounts for all it read: records_in + deletions_in = records_out +
  deletions_out + superseded.
- Publish applies a source's records and deletions to the current version under the database's lock:
  a record replaces a published one only when its revision is greater (same id, new document, vector
  and metadata); a deletion removes a published id whose revision is not greater. Hence a rerun of any
  step, or an old delta arriving late, changes nothing, and the published count obeys
  published = previous + added - deleted (checked on every publish).
- A published version remembers the deletions it applied as *tombstones* ({id: revision}, one
  content-addressed JSON object named by the version manifest), so a record older than the deletion
  of its id that arrives later (a delta written before the receipt was deleted, published after) does
  not bring the id back. A newer record of the id lifts its tombstone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from embedding_ingest.stores.exceptions import CorruptObjectError

REVISION = "revision"  # metadata key of a record's revision
DELETIONS = "deletions.json"


def revision_of(submitted_at: float, batch_id: str) -> str:
    """Sortable revision of a batch: fixed-width epoch seconds (UTC), then the batch id for ties."""
    return f"{submitted_at:020.6f}#{batch_id}"


def record_revision(metadata: Mapping[str, Any] | None) -> str:
    value = (metadata or {}).get(REVISION)
    return value if isinstance(value, str) else ""


def newer(candidate: str, incumbent: str | None) -> bool:
    """Does an entry of revision `candidate`, arriving after `incumbent`, replace it? (ties: later)"""
    return incumbent is None or candidate >= incumbent


def write_deletions(persist_dir: Path, deletions: Mapping[str, str]) -> None:
    """`{id: revision}`; written only when there are deletions, so deltas without any are unchanged."""
    if deletions:
        (Path(persist_dir) / DELETIONS).write_text(
            json.dumps(dict(sorted(deletions.items())), separators=(",", ":")), encoding="utf-8")


def read_deletions(persist_dir: Path) -> dict[str, str]:
    """The deletions a snapshot directory carries ({} when it has none). Raises CorruptObjectError."""
    path = Path(persist_dir) / DELETIONS
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptObjectError(str(path), f"not a deletions file ({exc})") from exc
    if not isinstance(raw, dict) or not all(isinstance(k, str) and k and isinstance(v, str)
                                            for k, v in raw.items()):
        raise CorruptObjectError(str(path), "must map non-empty ids to revision strings")
    return raw


def tombstones_key(database: str, tombstones: Mapping[str, str]) -> tuple[str, str]:
    """(content-addressed key, body) of a version's tombstones object."""
    body = json.dumps(dict(sorted(tombstones.items())), separators=(",", ":"))
    digest = hashlib.sha256(body.encode()).hexdigest()
    return f"{database}/snapshot/tombstones/{digest[:24]}.json", body


def check_tombstones(key: str, raw: Any) -> dict[str, str]:
    """`raw` (read from `key`) as {id: revision}, or CorruptObjectError."""
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in raw.items()):
        raise CorruptObjectError(key, "tombstones must map ids to revision strings")
    return raw
