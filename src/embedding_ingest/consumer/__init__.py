"""The consumer API: published snapshots for other programs (`open_snapshot`)."""

from embedding_ingest.consumer.snapshot import Snapshot, open_snapshot, parse_kind

__all__ = ["Snapshot", "open_snapshot", "parse_kind"]
