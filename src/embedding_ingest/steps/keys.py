"""Object-store key layout of the reference, in one place. Every id that becomes part of a key is
checked first, so an event cannot write outside its own prefix; a valid execution name that is not
key-safe as it stands (the run's batch_id is the execution name) is encoded deterministically."""

from __future__ import annotations

from asl_local.names import execution_key_segment, is_execution_name, is_safe_segment
from embedding_ingest.steps.exceptions import StepInputError

DATABASES = ("lines", "words")


def key_part(value: str, field: str) -> str:
    """`value` itself when key-safe; a valid execution name's deterministic safe segment otherwise
    (idempotent: a segment maps to itself). Raises StepInputError for anything else."""
    if is_safe_segment(value):
        return value
    if is_execution_name(value):
        return execution_key_segment(value)
    raise StepInputError(f"{field} {value!r} cannot be used in an object key: use letters, digits "
                         "and . _ : @ = + - (at most 200, starting with a letter or digit)")


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
