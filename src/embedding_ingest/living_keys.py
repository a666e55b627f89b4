"""Which metadata keys are *living* (issue 23): the keys readers filter on that change without the
text changing (place, labels, section; receipts/living.py derives them). Shared by the importer, the
ledger sync and the snapshot's metadata updates, so it sits below all of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

PLACE_KEYS = ("merchant_name", "normalized_phone_10", "normalized_full_address", "website")
LABEL_KEYS = ("label_status", "valid_labels", "invalid_labels", "label_proposed_by", "label_validated_at")
SECTION_KEY = "section_label"
LABEL_KEY_PREFIX = "label_"


def is_living_key(name: str) -> bool:
    """Whether a metadata key is living metadata (may change without re-embedding)."""
    return (name in PLACE_KEYS or name in LABEL_KEYS or name == SECTION_KEY
            or name.startswith(LABEL_KEY_PREFIX))


def living_part(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The living keys of a metadata mapping."""
    return {name: value for name, value in metadata.items() if is_living_key(name)}


def metadata_hash(metadata: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the living part of `metadata`: equal iff the living keys and
    values are equal (key order does not matter; arrays are kept sorted by the builders)."""
    canonical = json.dumps(living_part(metadata), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def dropped_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Living keys `old` has and `new` lacks: an update must clear them (Chroma's update merges)."""
    return sorted(name for name in old if is_living_key(name) and name not in new)
