"""The real LocalObjectStore, refusing writes or deletes of keys under chosen prefixes as a read-only
directory does (PermissionError), to see what a caller does with a failure it must not raise."""

from __future__ import annotations

import errno
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from embedding_ingest.stores.local_objects import LocalObjectStore


class RefusingObjectStore(LocalObjectStore):
    def __init__(self, root: Path | str, *, refuse_writes: Iterable[str] = (),
                 refuse_deletes: Iterable[str] = ()) -> None:
        super().__init__(root)
        self.refuse_writes = list(refuse_writes)
        self.refuse_deletes = list(refuse_deletes)
        self.refused: list[str] = []  # keys refused, in order

    def _refuse(self, key: str, prefixes: list[str]) -> None:
        if any(key.startswith(prefix) for prefix in prefixes):
            self.refused.append(key)
            raise PermissionError(errno.EACCES, "Permission denied", key)

    def put_bytes(self, key: str, data: bytes, **conditions: Any) -> str:
        self._refuse(key, self.refuse_writes)
        return super().put_bytes(key, data, **conditions)

    def upload_file(self, key: str, path: Path, *, if_none_match: bool = False, move: bool = False,
                    sha256: str | None = None) -> str:
        self._refuse(key, self.refuse_writes)
        return super().upload_file(key, path, if_none_match=if_none_match, move=move, sha256=sha256)

    def delete(self, key: str) -> None:
        self._refuse(key, self.refuse_deletes)
        super().delete(key)
