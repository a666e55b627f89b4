"""Object-store key layout of the reference, in one place. Every id that becomes part of a key is
checked first, so an event cannot write outside its own prefix; a valid execution name that is not
key-safe as it stands (the run's batch_id is the execution name) is encoded deterministically."""

from __future__ import annotations

import hashlib
import re

from asl_local.names import EXECUTION_NAME_RULE, is_execution_name
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.steps.exceptions import StepInputError

DATABASES = ("lines", "words")

# What may appear verbatim in an object key segment (and a local file name) on every backend.
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@=+-]{0,199}")
_READABLE = re.compile(r"[^A-Za-z0-9._@=+-]+")


def is_safe_segment(value: str) -> bool:
    """Whether `value` may be used verbatim as one object-key segment (and a local file name)."""
    return bool(_SAFE_SEGMENT.fullmatch(value)) and ".." not in value


def execution_key_segment(name: str) -> str:
    """A deterministic object-key segment for a valid execution name.

    Names made only of ASCII letters, digits and `. _ : @ = + -` (starting with a letter or digit, no
    `..`) are used as they are, so existing keys keep their layout. Any other valid name ("reçu-é",
    "日本", "_lead", "run(1)") becomes its readable ASCII part plus 16 hex digits of its SHA-256: the
    same name always gives the same segment, and two names share one only on a 64-bit hash collision.
    Raises InvalidInputError for a string that is not a valid execution name."""
    if is_safe_segment(name):
        return name
    if not is_execution_name(name):
        raise InvalidInputError(f"execution name {name!r} is invalid: {EXECUTION_NAME_RULE}")
    readable = _READABLE.sub("_", name).strip("._-")[:40].replace("..", "_")
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    if not readable or not readable[0].isalnum():
        readable = "x" + readable
    return f"{readable}-{digest}"


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
