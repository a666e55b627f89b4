"""`embedding-ingest console` as a user starts it: a subprocess that says where it listens, serves the
API on loopback, prints a token only with --allow-actions, and refuses what it cannot do in one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

from browser import free_port


@contextmanager
def console_process(cli, *args: str):
    env = {k: v for k, v in os.environ.items() if k != "EMBEDDING_INGEST_HOME"}
    env.update({"EMBEDDING_INGEST_HOME": str(cli.home), **cli.settings})
    process = subprocess.Popen([sys.executable, "-m", "embedding_ingest.cli", "console", *args], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def get_json(url: str, process: subprocess.Popen | None = None, deadline: float = 120.0):
    """GET `url` once the console answers: the subprocess imports chromadb and friends first, which takes
    a while on a loaded machine (the deadline is generous); if `process` exits meanwhile, fail at once
    with what it printed."""
    import json

    stop = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except OSError:
            if process is not None and process.poll() is not None:
                raise AssertionError(f"the console exited ({process.returncode}): "
                                     f"{process.stderr.read()}") from None
            if time.monotonic() > stop:
                raise
            time.sleep(0.2)  # polling interval, not an assertion


def make_workspace(cli) -> None:
    from pipeline import receipts_file

    cli.run("receipts", "import", str(receipts_file(cli.home.parent, 1)))


def test_the_console_serves_the_workspace_read_only_on_loopback(cli):
    make_workspace(cli)
    port = free_port()
    with console_process(cli, "--port", str(port)) as process:
        info = get_json(f"http://127.0.0.1:{port}/api/info", process)
        assert (info["backend"], info["actions_allowed"]) == ("local", False)
        assert get_json(f"http://127.0.0.1:{port}/api/executions")["executions"] == []
    stderr = process.stderr.read()
    assert f"Console on http://127.0.0.1:{port}/ (local backend, read-only)" in stderr
    assert "token" not in stderr.lower()
    assert "Traceback" not in stderr


def test_allow_actions_prints_the_token_the_actions_need(cli):
    make_workspace(cli)
    port = free_port()
    with console_process(cli, "--port", str(port), "--allow-actions") as process:
        assert get_json(f"http://127.0.0.1:{port}/api/info", process)["actions_allowed"] is True
    lines = process.stderr.read().splitlines()
    token = lines[next(i for i, line in enumerate(lines) if "Action token" in line) + 1].strip()
    assert len(token) >= 24 and " " not in token


def test_a_missing_workspace_a_busy_port_and_actions_on_aws_are_refused_in_one_line(cli):
    missing = cli.run("console", "--port", str(free_port()), code=2)
    assert missing.stderr.startswith(f"error: no workspace at {cli.home} (")
    assert missing.stderr.strip().endswith("; try: embedding-ingest receipts import FILE")
    assert not cli.home.exists()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = cli.run("console", "--port", str(port), code=2)
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr and "Traceback" not in busy.stderr
    refused = cli.run("console", "--backend", "aws", "--allow-actions", code=2)
    assert "--allow-actions works on the local backend only" in refused.stderr
