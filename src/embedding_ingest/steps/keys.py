"""Object-store key layout of the reference, in one place. Every id that becomes part of a key is
checked first, so an event cannot write outside its own prefix."""

from __future__ import annotations

import re

from embedding_ingest.steps.exceptions import StepInputError

_SAFE_KEY_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@=+-]{0,199}")
DATABASES = ("lines", "words")


def key_part(value: str, field: str) -> str:
    if not _SAFE_KEY_PART.fullmatch(value) or ".." in value:
        raise StepInputError(f"{field} {value!r} cannot be used in an object key: use letters, digits "
                             "and . _ : @ = + - (at most 200, starting with a letter or digit)")
    return value


def database_name(value: str) -> str:
    if value not in DATABASES:
        raise StepInputError(f"database {value!r} is not one of {list(DATABASES)}")
    return value


def poll_manifest_key(execution_id: str) -> str:
    return f"poll_manifests/{key_part(execution_id, 'execution_id')}/manifest.json"


def delta_prefix(database: str, delta_id: str) -> str:
    db = database_name(database)
    return f"{db}/delta/{db}/receipt_{db}/{key_part(delta_id, 'delta_id')}/"


def chunks_key(batch_id: str) -> str:
    return f"chunks/{key_part(batch_id, 'batch_id')}/chunks.json"


def chunk_intermediate_prefix(batch_id: str, chunk_index: int) -> str:
    return f"intermediate/{key_part(batch_id, 'batch_id')}/chunk-{chunk_index}/"


def groups_key(batch_id: str) -> str:
    return f"chunk_groups/{key_part(batch_id, 'batch_id')}/groups.json"


def group_poll_results_key(batch_id: str) -> str:
    return f"chunk_groups/{key_part(batch_id, 'batch_id')}/poll_results.json"


def group_merged_prefix(batch_id: str, group_index: int) -> str:
    return f"intermediate/{key_part(batch_id, 'batch_id')}-group-{group_index}/merged/"


def latest_snapshot_key(database: str) -> str:
    return f"{database_name(database)}/snapshot/latest/"
