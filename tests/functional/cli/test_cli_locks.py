"""`locks list` and `locks break` on both ledgers (SQLite, and DynamoDB on moto's server): the CLI as a
subprocess, the lock held by this test process as another writer would hold it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_runner import Cli, fast_cli
from moto_server import MotoEndpoint

from embedding_ingest.stores.dynamo_ledger import DynamoLedger
from embedding_ingest.stores.exceptions import LockLostError
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.sqlite_ledger import SqliteLedger

SHORT_LEASE = 0.3  # heartbeat 0.1 s: `locks break` watches 0.15 s


@pytest.fixture(params=["sqlite", "dynamodb"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Cli, Ledger]]:
    cli = fast_cli(tmp_path)
    if request.param == "sqlite":
        cli.home.mkdir(parents=True)
        ledger: Ledger = SqliteLedger(cli.home / "ledger.sqlite3")
    else:
        endpoint: MotoEndpoint = request.getfixturevalue("moto_endpoint")
        table = request.getfixturevalue("dynamodb_table")
        ledger = DynamoLedger(endpoint.client("dynamodb"), table)
        cli.settings.update(DYNAMODB_TABLE_NAME=table, AWS_ENDPOINT_URL=endpoint.url,
                            AWS_DEFAULT_REGION=endpoint.region)
    yield cli, ledger
    ledger.close()


def test_locks_list_shows_each_lock_free_or_held_with_its_holders_own_time(setup):
    cli, ledger = setup
    holders_clock = datetime(2026, 11, 29, 18, 13, 20, tzinfo=UTC).timestamp()
    held = ledger.acquire_lock("lines", "final-merge:line-20261129T161500Z:ab12", 300, now=holders_clock)

    listed = cli.json("locks", "list")["locks"]

    assert [(lock["name"], lock["state"]) for lock in listed] == [("lines", "held"), ("words", "free")]
    lines = listed[0]
    assert (lines["owner"], lines["fencing_token"], lines["rvn"]) == (held.owner, 1, held.rvn)
    assert (lines["lease_seconds"], lines["heartbeat_seconds"]) == (300, 100)
    assert lines["heartbeat_at"] == "2026-11-29T18:13:20Z"  # as the holder's clock had it, never an epoch
    shown = cli.run("locks", "list", COLUMNS="80")
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0] == "Publish locks (last heartbeat by each holder's own clock)"  # as every table's title
    first = next(line for line in lines if line.startswith("│ lines"))
    for part in ("final-merge:", " 1 ", held.rvn[:8], "300/100 s", "2026-11-29T18:13:20Z"):
        assert part in first, (part, shown.stdout)
    assert any(line.startswith("│ words │ (free)") for line in lines)
    assert "next: embedding-ingest locks list" in shown.stderr and "locks break lines" in shown.stderr


def test_a_dead_holders_lock_is_broken_and_its_late_writes_refused(setup):
    cli, ledger = setup
    dead = ledger.acquire_lock("lines", "crashed", SHORT_LEASE)

    broken = cli.run("locks", "break", "lines")

    said = " ".join(broken.stdout.split())
    assert "lock 'lines' broken: it was held by crashed (token 1); its publish will be refused" in said
    assert "next: embedding-ingest start-execution line" in broken.stderr
    assert ledger.current_lease("lines") is None
    with pytest.raises(LockLostError):
        ledger.heartbeat(dead)
    assert ledger.acquire_lock("lines", "next", 30).fencing_token == dead.fencing_token + 1


def test_a_live_holders_lock_is_not_broken_unless_forced(setup):
    cli, ledger = setup
    lease = ledger.acquire_lock("lines", "alive", 3.0)  # watched for 1.5 s
    stop = threading.Event()

    def renew() -> None:
        nonlocal lease
        while not stop.wait(0.05):
            try:
                lease = ledger.heartbeat(lease)
            except LockLostError:  # broken by --force: a holder stops here
                return

    beating = threading.Thread(target=renew)
    beating.start()
    try:
        refused = " ".join(cli.run("locks", "break", "line", code=1).stderr.split())
        assert "lock 'lines' not broken (its holder alive renewed it within 2 s: it is alive)" in refused
        assert ledger.current_lease("lines").owner == "alive"
        forced = cli.json("locks", "break", "lines", "--force")
    finally:
        stop.set()
        beating.join()
    assert forced["outcome"] == "broken" and ledger.current_lease("lines") is None


def test_breaking_a_free_lock_or_an_unknown_one(setup):
    cli, _ = setup
    assert cli.json("locks", "break", "words")["outcome"] == "free"
    refused = cli.run("locks", "break", "receipts", code=2)
    assert "no lock named 'receipts' (expected one of lines, words, or line, word)" in refused.stderr
