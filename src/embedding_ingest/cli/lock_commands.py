"""`embedding-ingest locks ...`: the publish locks (one per database) on whichever ledger the workspace
uses (SQLite, or DynamoDB with DYNAMODB_TABLE_NAME): who holds them, and freeing a dead holder's.

A lease records no deadline (steps/lease.py): one read cannot tell a live holder from a dead one, so
`locks list` shows what the ledger holds (the holder's last heartbeat by its own clock, its record
version) and `locks break` watches the lease before it breaks it."""

from __future__ import annotations

import getpass
import socket

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from embedding_ingest.cli import workspace
from embedding_ingest.cli.entry import Panel
from embedding_ingest.cli.errors import EXIT_FAILED, EXIT_USAGE
from embedding_ingest.cli.output import OutputFormat, OutputOption, emit, fail, guarded, hint, stderr
from embedding_ingest.exceptions import EmbeddingIngestError, InvalidInputError
from embedding_ingest.stores.records import ItemKind, Lease

locks_app = typer.Typer(help="The publish locks: who holds them; freeing a dead holder's.",
                        no_args_is_help=True)

KIND_OF_LOCK = {kind.database: kind.value for kind in ItemKind}  # "lines" -> "line"
LOCK_NAMES = tuple(KIND_OF_LOCK)
_DONE = {
    "free": "lock {name!r} is free: nothing to break",
    "released": "lock {name!r} was released by its holder while we watched: nothing to break",
    "broken": "lock {name!r} broken: it was held by {owner} (token {token}); its publish will be refused",
}


class LockNotBrokenError(EmbeddingIngestError):
    """`locks break` refused: the holder renewed its lease while we watched, or the lock changed hands.
    `try_` is the command to run instead (the CLI's error line prints it)."""

    def __init__(self, message: str, try_: str) -> None:
        super().__init__(message)
        self.try_ = try_


def _lock_name(database: str) -> str:
    name = {kind.value: kind.database for kind in ItemKind}.get(database.lower(), database.lower())
    if name not in LOCK_NAMES:
        error = InvalidInputError(f"no lock named {database!r} (expected one of {', '.join(LOCK_NAMES)}, "
                                  "or line, word)")
        error.try_ = "embedding-ingest locks list"  # type: ignore[attr-defined]
        raise error
    return name


def _row(name: str, lease: Lease | None) -> dict:
    if lease is None:
        return {"name": name, "state": "free"}
    return {"name": name, "state": "held", **lease.model_dump(mode="json", exclude={"name"})}


def _lease_cell(row: dict) -> str | None:
    if row["state"] == "free":
        return None
    return f"{row['lease_seconds']:g}/{row['heartbeat_seconds']:g} s"


def _short_owner(owner: str | None) -> str | None:
    """`final-merge:line-20261129T161500Z:3f2a9c1e`: the owner's trailing hex id cut to 8 characters
    (json has it whole)."""
    if owner is None:
        return None
    head, _, tail = owner.rpartition(":")
    return f"{head}:{tail[:8]}" if head and len(tail) > 8 else owner


def _locks_table(listed: dict) -> Group:
    """80 columns: the holder folds, ids are 8 characters (json has them whole), times never wrap. The
    title is a line above the table, as every table's (tables.fitted)."""
    shown = Table()
    for name, wide in (("lock", False), ("holder", True), ("token", False), ("rvn", False),
                       ("lease/beat", False), ("last heartbeat", False)):
        shown.add_column(name, overflow="fold", no_wrap=not wide)
    for row in listed["locks"]:
        token, holder = row.get("fencing_token"), _short_owner(row.get("owner")) or "(free)"
        shown.add_row(row["name"], holder, "" if token is None else str(token), (row.get("rvn") or "")[:8],
                      _lease_cell(row) or "", row.get("heartbeat_at") or "")
    return Group(Text("Publish locks (last heartbeat by each holder's own clock)", style="bold"), shown)


@locks_app.command("list", short_help="Each database's lock: free or held, its holder, fencing token and "
                                      "last heartbeat.")
def list_locks(output: OutputFormat = OutputOption) -> None:
    """Each database's lock: free or held, its holder, fencing token, record version (rvn, renewed by
    every heartbeat), lease and heartbeat lengths, and the last heartbeat by the holder's own clock.
    Run it twice a heartbeat apart: an rvn that did not change means a holder that stopped renewing."""
    guarded(output, workspace.require_workspace)
    ledger = workspace.ledger()
    rows = guarded(output, lambda: [_row(name, ledger.current_lease(name)) for name in LOCK_NAMES])
    emit({"locks": rows}, output, _locks_table)
    held = [row for row in rows if row["state"] == "held"]
    if held:
        beat = max(row["heartbeat_seconds"] for row in held)
        hint(output, f"embedding-ingest locks list   (again after {beat:g} s: an unchanged rvn is a holder "
                     f"that stopped renewing; then: embedding-ingest locks break {held[0]['name']})")


@locks_app.command("break")
def break_lock(database: str = typer.Argument(..., metavar="DATABASE", help="lines or words (or line, word)"),
               force: bool = typer.Option(False, "--force",
                                          help="Break without watching (even a live holder's lock)"),
               output: OutputFormat = OutputOption) -> None:
    """Free DATABASE's lock from a holder that died. It first watches the lease for 1.5 of its holder's
    heartbeat intervals (150 s at the default 300 s lease) and refuses (exit 1) if the holder renews it
    meanwhile; --force breaks at once. Either way the old holder's publish is refused by its fencing
    token, and the next writer takes the lock with a larger one."""
    from embedding_ingest.steps.lease import WATCH_HEARTBEATS, break_dead_lock

    try:
        name = _lock_name(database)
    except InvalidInputError as error:
        raise fail(error, output, EXIT_USAGE) from error
    guarded(output, workspace.require_workspace)
    ledger = workspace.ledger()
    held = guarded(output, lambda: ledger.current_lease(name))
    if held is not None and not force and output is not OutputFormat.JSON:
        stderr.print(f"watching lock {name!r} for {held.heartbeat_seconds * WATCH_HEARTBEATS:.0f} s "
                     f"(held by {held.owner}, token {held.fencing_token})...", markup=False, highlight=False)
    by = f"{getpass.getuser()}@{socket.gethostname()}"
    outcome, lease = guarded(output, lambda: break_dead_lock(ledger, name, by=by, force=force))
    if outcome == "alive":
        assert lease is not None
        watched = lease.heartbeat_seconds * WATCH_HEARTBEATS
        refused = LockNotBrokenError(
            f"lock {name!r} not broken (its holder {lease.owner} renewed it within {watched:.0f} s: it is "
            "alive)", try_=f"embedding-ingest locks break {name} --force   (only if you must)")
        raise fail(refused, output, EXIT_FAILED)
    if outcome == "raced":
        raise fail(LockNotBrokenError(f"lock {name!r} not broken (it changed hands while we looked)",
                                      try_="embedding-ingest locks list"), output, EXIT_FAILED)
    message = _DONE[outcome].format(name=name, owner=lease.owner if lease else None,
                                    token=lease.fencing_token if lease else None)
    emit({"lock": name, "outcome": outcome, "message": message,
          "lease": lease.model_dump(mode="json") if lease else None}, output, lambda r: r["message"])
    hint(output, f"embedding-ingest start-execution {KIND_OF_LOCK[name]}" if outcome == "broken"
         else "embedding-ingest locks list")


def register(app: typer.Typer) -> None:
    app.add_typer(locks_app, name="locks", rich_help_panel=Panel.MONITOR,
                  short_help="Publish locks: who holds them; freeing a dead holder's.")
