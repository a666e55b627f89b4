"""Ctrl-C, pressed in a terminal at three moments of `start-execution line --until-idle` (as it
starts, while batches are polled, while the final merge waits for the publish lock): one line saying
what stopped, that nothing is lost and the command that resumes; no traceback; exit 130; no execution
left RUNNING; and running that command publishes every line.

The command runs in a pseudo-terminal (tests/support/terminal.py), so Ctrl-C is the terminal's own:
SIGINT to the CLI and to every worker process it started."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from cli_runner import _FOREIGN_SETTINGS, Cli
from pipeline import receipts_file
from terminal import start

from embedding_ingest.stores.records import ExecutionStatus
from embedding_ingest.stores.sqlite_ledger import SqliteLedger

RESUME = "resume: embedding-ingest start-execution line --until-idle"


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    """A workspace with a receipt imported and its lines submitted in several batches (copied per
    test: import and submit happen once)."""
    root = tmp_path_factory.mktemp("interrupt")
    cli = Cli(home=root / "template", settings={"LOCAL_PROVIDER_POLLS_PER_STAGE": "0"})
    imported = cli.json("receipts", "import", str(receipts_file(root, 1)))
    cli.json("submit", "line", "--max-items-per-batch", "20")
    return cli.home, imported["lines_added"]


@pytest.fixture
def home(submitted, tmp_path):
    template, lines = submitted
    copy = tmp_path / "home"
    shutil.copytree(template, copy)
    return copy, lines


def _env(home, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_SETTINGS}
    return {**env, "EMBEDDING_INGEST_HOME": str(home), "LOCAL_PROVIDER_POLLS_PER_STAGE": "0", **settings}


def _ledger(home) -> SqliteLedger:
    return SqliteLedger(home / "ledger.sqlite3")


def _entered(home, state: str) -> bool:
    """A running execution has entered `state` (the engine writes history at least every 0.5 s)."""
    ledger = _ledger(home)
    try:
        return any(e.type.endswith("StateEntered") and state == (e.details or {}).get("name")
                   for record in ledger.list_executions(status=ExecutionStatus.RUNNING)
                   for e in ledger.get_events(record.execution_arn))
    finally:
        ledger.close()


def _stopped_cleanly(session, home) -> None:
    code = session.finish()
    screen = session.screen
    after = screen[screen.index("^C"):] if "^C" in screen else screen
    lines = [line for line in after.splitlines() if line.strip() and line.strip() != "^C"]
    assert code == 130, screen[-3000:]
    assert "Traceback" not in screen and "KeyboardInterrupt" not in screen, screen[-3000:]
    assert lines[-1].startswith("stopped by Ctrl-C: start-execution line --until-idle (nothing is lost"), \
        lines
    assert lines[-1].endswith(RESUME)
    ledger = _ledger(home)
    try:
        assert ledger.list_executions(status=ExecutionStatus.RUNNING) == []
        assert ledger.current_lease("lines") is None
    finally:
        ledger.close()


def _resumed_publishes_everything(home, lines: int) -> None:
    cli = Cli(home=home, settings={"LOCAL_PROVIDER_POLLS_PER_STAGE": "0"})
    cli.json("start-execution", "line", "--until-idle")
    counts = cli.json("status")["items"]["line"]
    assert counts["SUCCESS"] == lines and sum(counts.values()) == lines


def test_ctrl_c_as_it_starts(home, tmp_path):
    path, lines = home
    session = start(["start-execution", "line", "--until-idle"], _env(path), tmp_path)
    session.wait_for_text("Ctrl-C stops safely")
    session.press_ctrl_c()

    _stopped_cleanly(session, path)
    _resumed_publishes_everything(path, lines)


def test_ctrl_c_while_batches_are_polled(home, tmp_path):
    path, lines = home
    session = start(["start-execution", "line", "--until-idle"], _env(path), tmp_path)
    session.wait_until(lambda: _entered(path, "PollBatch"), "a PollBatch task to start")
    session.press_ctrl_c()

    _stopped_cleanly(session, path)
    _resumed_publishes_everything(path, lines)


def test_ctrl_c_while_the_final_merge_waits_for_the_publish_lock(home, tmp_path):
    path, lines = home
    ledger = _ledger(path)
    held = ledger.acquire_lock("lines", "test-holds-the-lock", 600)
    try:
        session = start(["start-execution", "line", "--until-idle"], _env(path), tmp_path)
        session.wait_until(lambda: _entered(path, "FinalMerge"), "the final merge to start")
        time.sleep(1)  # let it find the lock taken and wait to retry
        session.press_ctrl_c()
        code = session.finish()
    finally:
        ledger.release_lock(held)
        ledger.close()
    assert code == 130
    session.exit_code = None  # _stopped_cleanly reads the end again
    described = Cli(home=path, settings={}).json("list-executions", "--status", "aborted")["executions"]
    assert len(described) == 1
    assert "Traceback" not in session.screen and session.screen.rstrip().endswith(RESUME)
    _resumed_publishes_everything(path, lines)


def _interrupted(command: list[str], env: dict[str, str], ready) -> tuple[subprocess.Popen, str, str]:
    """Run `command` with stdout and stderr piped, SIGINT it once `ready()` holds (at most 120 s), and
    return (the process, its stdout, its stderr)."""
    # A shell's `make test &` (no job control) starts every process with SIGINT ignored; a child inherits
    # that, and the CLI rightly leaves an ignored SIGINT alone (as `nohup` and `cmd &` expect), so the test
    # process hands the child the default instead (exec resets a Python handler to it). Twice a make test
    # started so hung here. faulthandler: should it hang anyway, SIGABRT prints every thread's stack.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(command, env={**env, "PYTHONFAULTHANDLER": "1"}, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        try:
            printed, said = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            printed, said = process.communicate(timeout=30)
            raise AssertionError(f"still running 60 s after SIGINT; its threads:\n{said[-6000:]}") from None
    finally:
        process.kill()
    return process, printed, said


def test_interrupted_without_a_terminal_the_line_stands_alone(tmp_path):
    """SIGINT to a command whose stderr is a file or a pipe (`timeout -s INT`, a supervisor): nothing
    echoed ^C, so the stopped-by line comes with no empty line before it."""
    machine = tmp_path / "wait.json"
    machine.write_text('{"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 300, "End": true}}}')
    home = tmp_path / "home"
    command = [sys.executable, "-m", "embedding_ingest.cli", "definitions", "run", str(machine),
               "--name", "waits"]
    process, _, said = _interrupted(command, _env(home),
                                    lambda: (home / "ledger.sqlite3").exists() and _running(home))

    assert process.returncode == 130
    assert said.startswith("stopped by Ctrl-C: ") and said.count("\n") == 1, repr(said)


def _running(home) -> bool:
    ledger = _ledger(home)
    try:
        return bool(ledger.list_executions(status=ExecutionStatus.RUNNING))
    finally:
        ledger.close()


def test_interrupted_under_output_json_stdout_holds_a_document_saying_what_stopped(home, tmp_path):
    """`start-execution line --until-idle --output json` stopped by SIGINT: a program reading stdout gets
    the error document (what stopped, that nothing is lost, the command that resumes), not nothing; the
    human's line stays on stderr."""
    path, lines = home
    command = [sys.executable, "-m", "embedding_ingest.cli", "start-execution", "line", "--until-idle",
               "--output", "json"]
    # batches that stay in progress: the loop polls them until stopped
    process, printed, said = _interrupted(command, _env(path, LOCAL_PROVIDER_POLLS_PER_STAGE="1000"),
                                          lambda: _entered(path, "PollBatch"))

    assert process.returncode == 130
    document = json.loads(printed)
    assert document["error"] == "Interrupted"
    assert document["message"].startswith("stopped by Ctrl-C: start-execution line --until-idle "
                                          "(nothing is lost: the running execution is recorded ABORTED")
    assert document["try"] == "embedding-ingest start-execution line --until-idle"
    assert said.strip().splitlines()[-1] == f"{document['message']}; resume: {document['try']}"
    _resumed_publishes_everything(path, lines)
