"""`embedding-ingest schedule`: the embedded default runs by itself (submit, run until idle, wait)."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from embedding_ingest.cli import workspace
from embedding_ingest.cli.entry import Panel
from embedding_ingest.cli.output import OutputFormat, fail
from embedding_ingest.exceptions import EmbeddingIngestError
from embedding_ingest.pipeline.run import open_loop
from embedding_ingest.pipeline.schedule import StopRequest, parse_duration, parse_kinds, run_schedule

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[None]:
    """SIGINT/SIGTERM set `stop` instead of interrupting: the current step ends first (an interrupted
    execution would stay RUNNING and could hold the publish lock until its lease expires)."""
    def requested(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if not stop():
            _log(f"{name} received: stopping after the current step")
        stop.set(name)

    previous = {sig: signal.signal(sig, requested) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _log(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}", flush=True)


def schedule(every: str = typer.Option("5m", "--every", metavar="DURATION",
                                         help="Wait between rounds: 30s, 5m, 1h"),
             kinds: str = typer.Option("line,word", "--kinds", help="Workflows to run, comma-separated"),
             submit: bool = typer.Option(True, "--submit/--no-submit",
                                         help="Submit un-embedded items at the start of each round"),
             max_rounds: int = typer.Option(None, "--max-rounds", min=1, metavar="N",
                                            help="Stop after this many rounds (default: run until stopped)")
             ) -> None:
    """Run by itself: each round submits new items, runs each workflow until no batch is active, logs
    one line, then waits. Ctrl-C or SIGTERM stops it after the current step (exit 0)."""
    try:
        interval, chosen = parse_duration(every), parse_kinds(kinds)
    except EmbeddingIngestError as error:
        raise fail(error, OutputFormat.TABLE) from None
    stop = StopRequest()
    # a service may start before the first import (systemd, a container): it waits for one
    workspace.creates_workspace()
    _log(f"schedule: every {every}, kinds {','.join(k.value for k in chosen)}, "
         f"submit {'on' if submit else 'off'} (Ctrl-C or SIGTERM stops after the current step)")
    with stop_on_signals(stop):
        try:
            provider = workspace.provider() if submit else None
            with open_loop(workspace.settings(), ledger=workspace.ledger(), provider=provider) as loop:
                rounds = run_schedule(loop, provider, every=interval, kinds=chosen, submit=submit, stop=stop,
                                      log=_log, max_rounds=max_rounds)
        except EmbeddingIngestError as error:
            raise fail(error, OutputFormat.TABLE) from None  # one line; exit 2 for a configuration error
    _log(f"schedule: stopped after {rounds} round{'s' if rounds != 1 else ''}"
         + (f" ({stop.reason})" if stop.reason else ""))
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("schedule", rich_help_panel=Panel.RUN,
                short_help="Submit and run by itself, every few minutes.")(schedule)
