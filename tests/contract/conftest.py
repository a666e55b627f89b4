"""Adapters under contract. Every ObjectStore and every Ledger must pass the same suites.

To plug in another adapter: write a fixture that yields a fresh, empty instance (and cleans up), then
add ONE line to OBJECT_STORES or LEDGERS naming that fixture, e.g.
    "s3": Adapter("s3_object_store", cross_process=True),
`cross_process=True` means the instance can be pickled into another process and reopened there
(the adapter's picklability promise); those adapters also run the two-process tests.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from embedding_ingest.stores.local_objects import LocalObjectStore
from embedding_ingest.stores.ports import Ledger, ObjectStore
from embedding_ingest.stores.s3_objects import S3ObjectStore
from embedding_ingest.stores.sqlite_ledger import SqliteLedger

# S3 and DynamoDB adapters on moto's real-HTTP server (fixtures from tests/support/moto_server.py)


@dataclass(frozen=True)
class Adapter:
    fixture: str  # name of a fixture giving a fresh, empty instance
    cross_process: bool = False


OBJECT_STORES: dict[str, Adapter] = {
    "local": Adapter("local_object_store", cross_process=True),
    "s3": Adapter("s3_object_store", cross_process=True),
}
# How each ObjectStore is built afresh from nothing but its `location` (as backends.py builds one).
OBJECT_STORES_AT: dict[str, Callable[[pytest.FixtureRequest, str], ObjectStore]] = {
    "local": lambda request, location: LocalObjectStore(Path(location)),
    "s3": lambda request, location: S3ObjectStore(
        request.getfixturevalue("moto_endpoint").client("s3"), location),
}
LEDGERS: dict[str, Adapter] = {
    "sqlite": Adapter("sqlite_ledger", cross_process=True),
    "dynamodb": Adapter("dynamo_ledger", cross_process=True),
}


# -- factory fixtures -----------------------------------------------------------------------------
@pytest.fixture
def local_object_store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    yield ledger
    ledger.close()


# -- the fixtures the suites use ------------------------------------------------------------------
@pytest.fixture(params=sorted(OBJECT_STORES))
def object_store(request: pytest.FixtureRequest) -> ObjectStore:
    return request.getfixturevalue(OBJECT_STORES[request.param].fixture)


@pytest.fixture
def object_store_at(request: pytest.FixtureRequest) -> Callable[[str], ObjectStore]:
    """`object_store_at(location)`: a new instance of the adapter under test at that location."""
    build = OBJECT_STORES_AT[request.node.callspec.params["object_store"]]
    return lambda location: build(request, location)


@pytest.fixture(params=sorted(LEDGERS))
def ledger(request: pytest.FixtureRequest) -> Ledger:
    return request.getfixturevalue(LEDGERS[request.param].fixture)


@pytest.fixture
def require_cross_process(request: pytest.FixtureRequest) -> None:
    """Skip unless every adapter under test in this test can be reopened in another process."""
    params = request.node.callspec.params
    for name, registry in (("object_store", OBJECT_STORES), ("ledger", LEDGERS)):
        if name in params and not registry[params[name]].cross_process:
            pytest.skip(f"{params[name]} is not declared usable from other processes")


# -- running work in other processes --------------------------------------------------------------
def _child(target: Callable[..., Any], payload: bytes, args: tuple[Any, ...], queue: Any) -> None:
    try:
        adapter = pickle.loads(payload)  # reopen by what pickles, as a process pool would
        queue.put(("ok", target(adapter, *args)))
    except BaseException as exc:  # report, so the parent fails with the child's reason
        queue.put(("error", repr(exc)))


def _run_in_processes(adapter: Any, target: Callable[..., Any], args_per_process: list[tuple[Any, ...]],
                      ) -> list[Any]:
    """Run `target(reopened_adapter, *args)` in one child process per args tuple, all at once;
    return their results in order. A child's exception fails the calling test."""
    ctx = multiprocessing.get_context("fork")
    payload = pickle.dumps(adapter)
    queues = [ctx.Queue() for _ in args_per_process]
    procs = [ctx.Process(target=_child, args=(target, payload, args, q))
             for args, q in zip(args_per_process, queues, strict=True)]
    for proc in procs:
        proc.start()
    results = []
    for proc, queue in zip(procs, queues, strict=True):
        status, value = queue.get(timeout=120)
        proc.join(timeout=30)
        assert status == "ok", f"child process failed: {value}"
        results.append(value)
    return results


@pytest.fixture
def run_in_processes(require_cross_process: None) -> Callable[..., list[Any]]:
    """`run_in_processes(adapter, target, [args, ...])`; skips adapters not usable across processes.
    `target` must be a module-level function (children are forked)."""
    return _run_in_processes
