"""Packing items into one Batch API input file within every per-batch cap.

Caps (OpenAI Batch guide; tooling notes): <= 50,000 requests and <= 200 MB per input file, each input
<= 8,192 tokens; plus our configurable token cap per batch (MAX_TOKENS_PER_BATCH) and whatever room the
enqueued-token/request budgets leave. A custom_id may appear once per batch: the output is matched
back by custom_id, so a duplicate would make one result land twice (or an input go unanswered).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.providers.base import MAX_BYTES_PER_BATCH_FILE, MAX_REQUESTS_PER_BATCH
from embedding_ingest.providers.batch_files import EncodingFormat, encode_request
from embedding_ingest.providers.tokens import MAX_INPUT_TOKENS, fit_text
from embedding_ingest.stores.records import EmbeddingItem


class DuplicateCustomIdError(InvalidInputError):
    """Two items with one item_id (custom_id) offered for one batch."""


@dataclass
class PackedBatch:
    """The items taken (in order), their JSONL input file and its cl100k_base token total."""

    items: list[EmbeddingItem] = field(default_factory=list)
    jsonl: bytes = b""
    tokens: int = 0
    truncated: int = 0  # items whose text was shortened to the per-input token limit

    @property
    def item_ids(self) -> list[str]:
        return [item.item_id for item in self.items]


def within_input_limit(item: EmbeddingItem) -> EmbeddingItem:
    """`item` with a token count and an embed_text of at most 8,192 tokens. Items imported with token
    fitting already are; older ones are counted here and, if too long, cut at a token boundary."""
    if item.tokens is not None and item.tokens <= MAX_INPUT_TOKENS:
        return item
    fitted = fit_text(item.embed_text)
    return item.model_copy(update={"embed_text": fitted.text, "tokens": fitted.tokens,
                                   "truncated": item.truncated or fitted.truncated})


def pack_requests(items: Sequence[EmbeddingItem], model: str, *, max_items: int,
                  dimensions: int | None = None, encoding_format: EncodingFormat = "base64",
                  max_bytes: int = MAX_BYTES_PER_BATCH_FILE,
                  max_tokens: int | None = None) -> PackedBatch:
    """The longest prefix of `items` within `max_items` (and 50,000), `max_bytes` and `max_tokens`,
    each request asking for `dimensions` (None: the model's native width; providers.models decides)
    in `encoding_format`.

    May return no items (the first one alone exceeds `max_tokens`: no room in the budget). Raises
    DuplicateCustomIdError if an item_id repeats, InvalidInputError if one request alone exceeds
    `max_bytes`."""
    max_items = min(max_items, MAX_REQUESTS_PER_BATCH)
    packed = PackedBatch()
    lines: list[bytes] = []
    size = 0
    seen: set[str] = set()
    for item in items[:max_items]:
        if item.item_id in seen:
            raise DuplicateCustomIdError(f"item {item.item_id}: offered twice for one batch; a custom_id "
                                         "must be unique within a batch")
        seen.add(item.item_id)
        item = within_input_limit(item)
        line = encode_request(item, model, dimensions, encoding_format)
        if len(line) > max_bytes:
            raise InvalidInputError(f"item {item.item_id}: request of {len(line)} bytes exceeds the "
                                    f"{max_bytes}-byte batch file limit on its own")
        tokens = item.tokens or 0
        if size + len(line) > max_bytes or (max_tokens is not None and packed.tokens + tokens > max_tokens):
            break
        packed.items.append(item)
        packed.tokens += tokens
        packed.truncated += item.truncated
        lines.append(line)
        size += len(line)
    packed.jsonl = b"".join(lines)
    return packed
