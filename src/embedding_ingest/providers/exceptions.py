"""Provider errors. Transient ones (rate limits, 5xx, timeouts) are retried; terminal ones are not."""

from __future__ import annotations

from embedding_ingest.exceptions import ConfigurationError, TerminalError, TransientError


class ProviderTransientError(TransientError):
    pass


class ProviderRequestError(TerminalError):
    """The provider rejected the request (bad input, auth, unknown batch)."""


class UnknownProviderBatchError(ProviderRequestError):
    def __init__(self, provider_batch_id: str) -> None:
        super().__init__(f"provider does not know batch {provider_batch_id!r}")
        self.provider_batch_id = provider_batch_id


class BatchLimitError(TerminalError):
    """A batch would break the Batch API's limits (requests or bytes per file)."""


class UnknownProviderFileError(ProviderRequestError):
    def __init__(self, file_id: str) -> None:
        super().__init__(f"provider does not know file {file_id!r}")
        self.file_id = file_id


class ProviderAccountError(ConfigurationError):
    """The provider refuses the account itself (quota or billing exhausted, a revoked or wrong key):
    nothing any item did, and no retry or other batch can get past it. One line; nothing was changed."""
