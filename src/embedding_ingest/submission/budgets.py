"""What the provider holds for us (enqueued tokens/requests per model) and what it costs.

OpenAI limits, per organisation and model, the input tokens (and requests) of batches it still holds
(not yet completed/failed/expired/cancelled); a batch created beyond them fails at validation with
`token_limit_exceeded`. Submission keeps within `OPENAI_ENQUEUED_TOKEN_LIMIT` and
`OPENAI_ENQUEUED_REQUEST_LIMIT` by counting what our own ledger says is still at the provider.
Prices are USD per 1M input tokens at Batch API rates, from the `OPENAI_BATCH_PRICES` table.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from embedding_ingest.config import Settings
from embedding_ingest.providers.base import FINISHED_PROVIDER_STATUSES
from embedding_ingest.stores.ports import BatchLedger
from embedding_ingest.stores.records import ACTIVE_BATCH_STATUSES, BatchOperation, BatchSummary, ItemKind

PRICE_FALLBACK_MODEL = "text-embedding-3-small"
_FINISHED = frozenset(status.value for status in FINISHED_PROVIDER_STATUSES)


class Enqueued(BaseModel):
    """Input tokens and requests of one model's batches the provider still holds."""

    model: str
    tokens: int = 0
    requests: int = 0
    batches: int = 0


def still_at_provider(summary: BatchSummary) -> bool:
    """Claimed or submitted and not reported finished by the provider (a batch we ingested but have
    not yet published is FINALIZING for us, yet no longer counts against the provider's queue)."""
    return (summary.status in ACTIVE_BATCH_STATUSES and summary.provider_status not in _FINISHED
            and summary.listed_status not in _FINISHED)


def enqueued_for(ledger: BatchLedger, model: str) -> Enqueued:
    """Sum over every kind's batches of `model` still at the provider. Batches recorded before token
    counting count their requests and no tokens."""
    total = Enqueued(model=model)
    for summary in ledger.list_batches(statuses=ACTIVE_BATCH_STATUSES):
        embeds = summary.operation is BatchOperation.EMBED  # deletion batches never reach the provider
        if embeds and summary.model == model and still_at_provider(summary):
            total.tokens += summary.tokens or 0
            total.requests += summary.item_count
            total.batches += 1
    return total


def price_per_million(model: str, settings: Settings) -> tuple[float, str]:
    """(USD per 1M input tokens, the model whose price it is). A model without a price (the local
    one) is priced as text-embedding-3-small: what the same work would cost at OpenAI."""
    prices = settings.openai_batch_prices
    if model in prices:
        return prices[model], model
    return prices.get(PRICE_FALLBACK_MODEL, 0.0), PRICE_FALLBACK_MODEL


def cost_usd(tokens: int, model: str, settings: Settings) -> float:
    return tokens * price_per_million(model, settings)[0] / 1_000_000


class KindUsage(BaseModel):
    """Tokens and cost of one kind's batches: submitted (our count) and billed (the provider's usage)."""

    kind: ItemKind
    batches: int = 0
    tokens_submitted: int = 0
    tokens_billed: int = 0
    cost_usd: float = 0.0  # billed tokens at each batch's model price


def usage_by_kind(summaries: Iterable[BatchSummary], settings: Settings) -> list[KindUsage]:
    """Per kind, over every batch summary given (closed ones included: cost so far)."""
    usage = {kind: KindUsage(kind=kind) for kind in ItemKind}
    for summary in summaries:
        if summary.operation is not BatchOperation.EMBED:  # deletion batches never reach the provider
            continue
        kind = ItemKind.LINE if summary.batch_type is ItemKind.LINE.batch_type else ItemKind.WORD
        row = usage[kind]
        row.batches += 1
        row.tokens_submitted += summary.tokens or 0
        row.tokens_billed += summary.billed_tokens or 0
        row.cost_usd += cost_usd(summary.billed_tokens or 0, summary.model or "", settings)
    return list(usage.values())
