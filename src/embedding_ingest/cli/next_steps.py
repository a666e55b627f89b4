"""The `next:` line: the one command to run next, read from the workspace's state (never from what
the command that just ran assumes), so it is always true: nothing imported -> import; items waiting
-> submit; batches active -> run until idle; all published -> query."""

from __future__ import annotations

from embedding_ingest.stores.records import ACTIVE_BATCH_STATUSES, ItemKind

PROGRAM = "embedding-ingest"
IMPORT = f"{PROGRAM} receipts import FILE"


def for_kind(ledger, kind: ItemKind) -> str | None:
    """What to run next for `kind`: run the workflow while batches are active, else submit items that
    wait, else query what is published; None when nothing of `kind` exists."""
    if ledger.list_batches(statuses=ACTIVE_BATCH_STATUSES, batch_type=kind.batch_type):
        return f"{PROGRAM} start-execution {kind.value} --until-idle"
    counts = ledger.count_items(kind)
    if counts.get("NONE"):
        return f"{PROGRAM} submit {kind.value}"
    if ledger.get_published(kind.database) is not None:
        return f'{PROGRAM} query {kind.value} "TEXT"'
    return None


def overall(ledger) -> str:
    """The first thing to do across both kinds (lines first): work that waits beats a query."""
    hints = [for_kind(ledger, kind) for kind in ItemKind]
    waiting = [h for h in hints if h and " query " not in h]
    if waiting:
        return waiting[0]
    return next((h for h in hints if h), IMPORT)


def after_run(ledger, kind: ItemKind) -> str:
    """The next step as a run of `kind` is looked at (describe-execution, any time after it ended):
    `kind`'s own work while some waits (its active batches, its items to submit), else the
    workspace's first step, as `status` says it."""
    own = for_kind(ledger, kind)
    return own if own and " query " not in own else overall(ledger)


__all__ = ["IMPORT", "after_run", "for_kind", "overall"]
