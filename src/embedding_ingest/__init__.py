"""embedding-ingest: OpenAI Batch API embeddings of receipt lines and words, published as ChromaDB
snapshots. The public API for programs that read the snapshots:

    from embedding_ingest import open_snapshot
    with open_snapshot("lines") as snap:
        result = snap.query(query_texts=["TOTAL"], n_results=5, where={"merchant_name": "..."})

Imported lazily, so `import embedding_ingest` stays cheap for the CLI and the Lambda handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embedding_ingest.consumer.snapshot import Snapshot, open_snapshot

__all__ = ["Snapshot", "open_snapshot"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from embedding_ingest.consumer import snapshot

        return getattr(snapshot, name)
    raise AttributeError(f"module 'embedding_ingest' has no attribute {name!r}")
