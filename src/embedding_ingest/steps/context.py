"""What every step handler receives besides its event: the ports and the settings."""

from __future__ import annotations

from dataclasses import dataclass

from embedding_ingest.config import Settings
from embedding_ingest.providers.base import BatchProvider
from embedding_ingest.stores.ports import Ledger, ObjectStore


@dataclass
class StepContext:
    objects: ObjectStore
    ledger: Ledger
    provider: BatchProvider
    settings: Settings
