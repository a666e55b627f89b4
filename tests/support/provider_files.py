"""Reading a provider's files whole in tests (the pipeline streams them: BatchProvider.open_file)."""

from __future__ import annotations

from typing import Any


def read_file(provider: Any, file_id: str) -> bytes:
    """The whole content of a provider file (small files of tests only)."""
    with provider.open_file(file_id) as chunks:
        return b"".join(chunks)
