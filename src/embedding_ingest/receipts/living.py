"""Living metadata (issue 23): the metadata keys readers filter on that change long after the text was
embedded (a place lookup corrects the merchant, a person validates a label, a section is recomputed).
Pure functions of a receipt's `place`/`fields`, a line's `section` and labels, a word's labels.

Keys, as the original system's readers filter them (Chroma 1.5.9 takes homogeneous non-empty arrays
and `$contains` on them; it refuses empty arrays and None, so an unknown value is left out):
- every item: `merchant_name` (place.merchant_name, else fields.company), `normalized_phone_10` (the
  last 10 digits of place.phone when it has at least 10), `normalized_full_address` (place.address,
  else fields.address; upper case, whitespace collapsed), `website`;
- a labelled item: `label_status` (validated if any label is validated, else invalid if any is
  invalid, else pending), `label_<LABEL>` true per validated and false per invalid label,
  `valid_labels` / `invalid_labels` (sorted arrays), `label_proposed_by` / `label_validated_at` of the
  latest-validated label of the deciding status;
- a line: `section_label`, and `valid_labels` = its own validated labels and its words' (union).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from embedding_ingest.living_keys import LABEL_KEY_PREFIX, SECTION_KEY
from embedding_ingest.receipts.models import Receipt, WordLabel

_WHITESPACE = re.compile(r"\s+")


def normalize_phone(phone: str | None) -> str | None:
    """The last 10 digits when the number has at least 10, else None ("+1 (555) 010-2030" ->
    "5550102030")."""
    digits = "".join(ch for ch in phone or "" if ch.isdigit() and ch.isascii())
    return digits[-10:] if len(digits) >= 10 else None


def normalize_address(address: str | None) -> str | None:
    """Upper case, runs of whitespace as one space, trimmed; None when nothing is left."""
    text = _WHITESPACE.sub(" ", address or "").strip().upper()
    return text or None


def place_metadata(receipt: Receipt) -> dict[str, str]:
    """The place keys every item of `receipt` carries (unknown ones left out)."""
    place = receipt.place
    values = {
        "merchant_name": receipt.merchant_name,
        "normalized_phone_10": normalize_phone(place.phone if place else None),
        "normalized_full_address": normalize_address(
            (place.address if place and place.address else None) or receipt.fields.address),
        "website": place.website if place else None,
    }
    return {name: value for name, value in values.items() if value}


def label_metadata(labels: Sequence[WordLabel]) -> dict[str, Any]:
    """The label keys of an item with these labels ({} when it has none)."""
    if not labels:
        return {}
    valid = sorted({label.label for label in labels if label.status == "validated"})
    invalid = sorted({label.label for label in labels if label.status == "invalid"} - set(valid))
    status = "validated" if valid else "invalid" if invalid else "pending"
    metadata: dict[str, Any] = {"label_status": status}
    metadata.update({f"{LABEL_KEY_PREFIX}{name}": True for name in valid})
    metadata.update({f"{LABEL_KEY_PREFIX}{name}": False for name in invalid})
    if valid:
        metadata["valid_labels"] = valid
    if invalid:
        metadata["invalid_labels"] = invalid
    deciding = [label for label in labels if label.status == status] or list(labels)
    # the latest validated_at wins (ISO-8601 strings of one writer compare in time order); ties and
    # undated labels: the first listed
    latest = max(enumerate(deciding), key=lambda pair: (pair[1].validated_at or "", -pair[0]))[1]
    if latest.proposed_by:
        metadata["label_proposed_by"] = latest.proposed_by
    if latest.validated_at:
        metadata["label_validated_at"] = latest.validated_at
    return metadata


def line_metadata(section: str | None, own: Sequence[WordLabel],
                  words_valid: Iterable[str]) -> dict[str, Any]:
    """A line's label and section keys: its own labels' keys, `section_label`, and `valid_labels` as
    the union of its own validated labels and its words' (`words_valid`)."""
    metadata = label_metadata(own)
    union = sorted(set(metadata.get("valid_labels", [])) | set(words_valid))
    if union:
        metadata["valid_labels"] = union
    if section:
        metadata[SECTION_KEY] = section
    return metadata
