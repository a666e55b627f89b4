"""Content hashes of items (issue 10): what decides whether a re-imported item must be embedded again.

The hash covers exactly what is embedded: the text sent to the provider (the item's text with its
layout context) and the model that embeds it. Metadata (boxes, merchant) is not embedded, so a change
there alone updates the ledger row without paying for a new embedding. Same inputs, same hash.
"""

from __future__ import annotations

import hashlib
import json


def content_hash(embed_text: str, model: str | None) -> str:
    """sha256 hex of (embed_text, model) in a canonical JSON form."""
    body = json.dumps([embed_text, model or ""], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()
