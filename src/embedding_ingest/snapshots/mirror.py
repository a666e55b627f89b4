"""The plain mirror (SNAPSHOT_PUBLISH_PLAIN=true): `{database}/snapshot/latest/` in the object store
holds the current version as one plain Chroma persist directory, file by file, as the reference
system's consumers expect (they download the prefix and open it with chromadb.PersistentClient).

It is rebuilt from the version (`snapshots pull` into a local work dir, which reuses the previous
pull when the version is unchanged) and uploaded after the pointer moved; files that no longer belong
are deleted last. `latest/plain.json` is written after the files and names the version and every
file with its size, so a consumer can tell a complete download from one made during an update.
Best effort, like the pointer mirror: a failure is logged and returned (publish records it on its
result), never fails the publish it follows."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from embedding_ingest.config import Settings
from embedding_ingest.snapshots.pull import MARKER, pull_version
from embedding_ingest.stores.ports import Ledger, ObjectStore

log = logging.getLogger(__name__)
PLAIN_MANIFEST = "plain.json"


def plain_prefix(database: str) -> str:
    return f"{database}/snapshot/latest/"


@dataclass(frozen=True)
class MirrorReport:
    version: str
    files: int
    bytes: int
    seconds: float


def write_plain_mirror(store: ObjectStore, ledger: Ledger, settings: Settings, database: str
                       ) -> MirrorReport | None:
    """Upload the current version of `database` as a plain Chroma directory under
    `{database}/snapshot/latest/`. Returns what was uploaded, None when nothing is published."""
    started = time.perf_counter()
    if ledger.get_published(database) is None:
        return None
    work = settings.cache_dir / database / "plain"
    pulled = pull_version(store, ledger, settings, database, work)
    prefix = plain_prefix(database)
    files: dict[str, int] = {}
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        name = path.relative_to(work).as_posix()
        if name == MARKER or name.endswith(("-wal", "-shm", "-journal")):
            continue
        store.upload_file(prefix + name, path)
        files[name] = path.stat().st_size
    store.put_json(prefix + PLAIN_MANIFEST, {"database": database, "collection": database,
                                             "version": pulled.version.version, "count": pulled.count,
                                             "model": pulled.version.model,
                                             "dimensions": pulled.version.dimensions, "files": files})
    keep = {prefix + name for name in files} | {prefix + PLAIN_MANIFEST, prefix + "pointer.json"}
    for info in list(store.list(prefix)):
        if info.key not in keep:
            store.delete(info.key)
    return MirrorReport(pulled.version.version, len(files), sum(files.values()),
                        time.perf_counter() - started)


def refresh_plain_mirror(store: ObjectStore, ledger: Ledger, settings: Settings, database: str) -> str | None:
    """write_plain_mirror when SNAPSHOT_PUBLISH_PLAIN is on. A failure is logged and returned as one
    line (None: refreshed, or not asked for), never raised."""
    if not settings.snapshot_publish_plain:
        return None
    try:
        report = write_plain_mirror(store, ledger, settings, database)
    except Exception as exc:  # a mirror for people and tools: never fail the committed publish
        problem = one_line(f"could not refresh the plain Chroma mirror {plain_prefix(database)}", exc)
        log.warning("%s", problem)
        return problem
    if report is not None:
        log.info("plain Chroma mirror of %s is version %s (%d files, %d bytes, %.1f s)", database,
                 report.version, report.files, report.bytes, report.seconds)
    return None


def one_line(what: str, error: BaseException) -> str:
    """"{what}: {ErrorType}: {message}" on one line, for a failure recorded rather than raised."""
    return " ".join(f"{what}: {type(error).__name__}: {error}".split())


