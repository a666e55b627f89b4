"""`embedding-ingest schedule`: the embedded default runs by itself, and a real SIGTERM / Ctrl-C (SIGINT to
the whole process group, as a terminal sends it) stops it cleanly: the running step finishes, exit 0,
no execution left RUNNING, no publish lock held, nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from cli_runner import Cli
from pipeline import receipts_file

from embedding_ingest.config import Settings
from embedding_ingest.stores.records import ExecutionStatus, ItemKind
from embedding_ingest.stores.sqlite_ledger import SqliteLedger

pytestmark = pytest.mark.slow


class Scheduler:
    """`embedding-ingest schedule ...` as a subprocess in its own session (its own process group)."""

    def __init__(self, cli: Cli, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("EMBEDDING_INGEST_HOME",)}
        env.update({"EMBEDDING_INGEST_HOME": str(cli.home), **cli.settings})
        self.process = subprocess.Popen([sys.executable, "-m", "embedding_ingest.cli", "schedule", *args],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, fragment: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if fragment in line]
            if found:
                return found[0]
            assert self.process.poll() is None, (self.lines, self.process.stderr.read())
            time.sleep(0.05)
        raise AssertionError(f"no line with {fragment!r} within {timeout} s: {self.lines}")

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code, self.process.stderr.read()


def _ledger(cli: Cli) -> SqliteLedger:
    return SqliteLedger(Settings(EMBEDDING_INGEST_HOME=str(cli.home)).ledger_path)


def _assert_stopped_cleanly(cli: Cli) -> None:
    ledger = _ledger(cli)
    try:
        assert not ledger.list_executions(status=ExecutionStatus.RUNNING), "an execution was left RUNNING"
        for kind in ItemKind:
            assert ledger.current_lease(kind.database) is None, f"the {kind.database} lock is still held"
    finally:
        ledger.close()


def _statuses(cli: Cli) -> dict[str, Counter]:
    ledger = _ledger(cli)
    try:
        return {kind.value: Counter({str(k): v for k, v in ledger.count_items(kind).items() if v})
                for kind in ItemKind}
    finally:
        ledger.close()


def test_rounds_publish_everything_and_sigterm_during_an_execution_lets_it_finish(cli: Cli, tmp_path: Path):
    cli.run("receipts", "import", str(receipts_file(tmp_path, 2)))
    imported = _statuses(cli)
    scheduler = Scheduler(cli, "--every", "1s")

    # the signal lands while the first execution runs (seen as RUNNING in the ledger)
    ledger = _ledger(cli)
    deadline = time.monotonic() + 120
    while not ledger.list_executions(status=ExecutionStatus.RUNNING):
        assert time.monotonic() < deadline and scheduler.process.poll() is None, scheduler.lines
        time.sleep(0.02)
    ledger.close()
    scheduler.process.send_signal(signal.SIGTERM)
    code, errors = scheduler.finish()

    assert code == 0, (scheduler.lines, errors)
    assert "Traceback" not in errors
    assert any("SIGTERM received: stopping after the current step" in line for line in scheduler.lines)
    assert "stopped after 1 round (SIGTERM)" in scheduler.lines[-1]
    _assert_stopped_cleanly(cli)
    done = _ledger_executions(cli)
    assert done and all(e.status is ExecutionStatus.SUCCEEDED for e in done)

    # started again, it carries on: every item is published exactly once
    resumed = Scheduler(cli, "--every", "1s", "--max-rounds", "2")
    code, errors = resumed.finish()
    assert code == 0, (resumed.lines, errors)
    rounds = [line for line in resumed.lines if " round " in line]
    assert len(rounds) == 2
    assert rounds[-1].endswith("round 2: submitted nothing; line: idle; word: idle")
    assert _statuses(cli) == {kind: Counter({"SUCCESS": sum(counts.values())})
                              for kind, counts in imported.items()}
    _assert_stopped_cleanly(cli)


def _ledger_executions(cli: Cli):
    ledger = _ledger(cli)
    try:
        return ledger.list_executions()
    finally:
        ledger.close()


def test_ctrl_c_while_waiting_stops_at_once_with_exit_0(cli: Cli, tmp_path: Path):
    cli.run("receipts", "import", str(receipts_file(tmp_path, 1)))
    scheduler = Scheduler(cli, "--every", "1h", "--kinds", "line")
    first_round = scheduler.wait_for_line(" round 1:")
    assert "line: 1 execution (1 SUCCEEDED)" in first_round and "word" not in first_round.split(";", 1)[1]

    started = time.monotonic()
    os.killpg(scheduler.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    code, errors = scheduler.finish(timeout=60)

    assert code == 0, (scheduler.lines, errors)
    assert time.monotonic() - started < 30  # the hour-long wait was cut short
    assert "stopped after 1 round (SIGINT)" in scheduler.lines[-1]
    assert "Traceback" not in errors
    _assert_stopped_cleanly(cli)
    statuses = _statuses(cli)
    assert set(statuses["line"]) == {"SUCCESS"} and set(statuses["word"]) == {"NONE"}
