"""File primitives the local provider's state is built on: whole-file atomic writes, exclusive creation,
and a per-object lock, so several processes can share one provider root without torn or lost state."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


def _write_temp(directory: Path, data: bytes) -> Path:
    fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def atomic_write(path: Path, data: bytes) -> None:
    """Readers see the old content or the new, never a part."""
    temp = _write_temp(path.parent, data)
    os.replace(temp, path)


def create_exclusive(path: Path, data: bytes) -> bool:
    """Create `path` with `data` only if it does not exist yet; False if it did. The file appears
    complete or not at all (hard link of a finished temp file), so racing creators cannot interleave."""
    temp = _write_temp(path.parent, data)
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    finally:
        temp.unlink(missing_ok=True)
    return True


@contextmanager
def scratch_file(directory: Path) -> Iterator[tuple[Path, BinaryIO]]:
    """A temporary file in `directory`, open for writing; gone on leaving unless linked_exclusive into
    place first (so a big file is written as it is made, never held in memory)."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield path, handle
    finally:
        path.unlink(missing_ok=True)


def link_exclusive(handle: BinaryIO, temp: Path, path: Path) -> bool:
    """Make the finished scratch file `temp` (open as `handle`) appear at `path` whole, only if `path`
    does not exist yet; False if it did."""
    handle.flush()
    os.fsync(handle.fileno())
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    return True


def dump_json(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True).encode("utf-8")


def load_json(path: Path) -> Any:
    return json.loads(path.read_bytes())


@contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """An advisory lock across processes and threads (each holder opens its own descriptor)."""
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
