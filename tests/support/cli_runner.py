"""The `embedding-ingest` command run as a user runs it: a process of its own with its own workspace
(EMBEDDING_INGEST_HOME in tmp). With --output json, stdout must be one JSON document; logs and
progress belong on stderr.

Each command is a process of its own, started warm: a server that has imported the command line once
forks it (tests/support/cli_zygote.py), so a command costs what it does, not ~1.3 s of imports. The
child is set up as `python -m embedding_ingest.cli ARGS` would be (environment, working directory,
argv, sys.path, streams, exit) and shares no state with the test process or with other commands.
`Cli(fresh_process=True)`, a setting an interpreter reads only as it starts (PYTHON*, LANG, LC_*), or
one the CLI's modules read only as they are imported (NO_COLOR, FORCE_COLOR, ...) starts a new
interpreter instead; COLUMNS and LINES are read afresh per command (the server never holds them). A
command interrupted in the test process (pytest-timeout, Ctrl-C) ends the server with it."""

from __future__ import annotations

import contextlib
import json
import locale
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Settings a developer's shell may carry that would point the CLI somewhere else.
_FOREIGN_SETTINGS = ("EMBEDDING_INGEST_HOME", "DYNAMODB_TABLE_NAME", "CHROMADB_BUCKET", "CHROMA_ROOT",
                     "CHROMADB_STORAGE_MODE", "OPENAI_API_KEY", "OPENAI_BASE_URL", "AWS_ENDPOINT_URL",
                     "EMBEDDING_PROVIDER", "EMBEDDING_MODEL", "EMBEDDING_DIMENSIONS", "MAX_ITEMS_PER_BATCH",
                     "MAX_BATCHES_PER_EXECUTION", "LOCAL_PROVIDER_POLLS_PER_STAGE")
# Batches finish at their first poll, so one execution publishes everything submitted.
FAST_LOCAL_PROVIDER = {"LOCAL_PROVIDER_POLLS_PER_STAGE": "0"}
TIMEOUT_SECONDS = 300
# Read by the interpreter as it starts (PYTHONPATH excepted: the warm start builds sys.path from it).
_STARTUP_VARIABLES = ("PYTHON", "LANG", "LC_")
# Read once, when the CLI's modules are imported (Rich's Console(), Typer's rich_utils): a command that
# sets one gets a new interpreter, and the fork server never holds one, so that a Console made in the
# server reads COLUMNS and LINES afresh, from each command's own environment, as Rich does when no
# width was fixed at its creation.
_IMPORT_TIME_VARIABLES = ("NO_COLOR", "FORCE_COLOR", "PY_COLORS", "TTY_COMPATIBLE", "TTY_INTERACTIVE",
                          "TERMINAL_WIDTH", "_TYPER_FORCE_DISABLE_TERMINAL", "GITHUB_ACTIONS",
                          "JUPYTER_COLUMNS", "JUPYTER_LINES")
_SERVER_UNSET = ("COLUMNS", "LINES", *_IMPORT_TIME_VARIABLES)


def _server_environment() -> dict[str, str]:
    """The fork server's environment: the test process's, without the settings pointing the CLI
    elsewhere and without any setting the CLI's modules read only as they are imported."""
    return {k: v for k, v in os.environ.items() if k not in _FOREIGN_SETTINGS and k not in _SERVER_UNSET}
_SUPPORT = str(Path(__file__).resolve().parent)
_SERVER = (f"import sys; sys.path.insert(0, {_SUPPORT!r}); import cli_zygote; sys.path.remove({_SUPPORT!r}); "
           "cli_zygote.serve{}")
# The `embedding-ingest` warm_command writes: hands its argv, environment, working directory and its
# stdin, stdout and stderr to the fork server's socket, and exits with the command's code.
_CLIENT = """#!{python} -IS
import json, os, socket, sys
if any(name in os.environ for name in {import_time!r}):  # read as the CLI is imported: start afresh
    os.execv({python!r}, [{python!r}, "-m", "embedding_ingest.cli", *sys.argv[1:]])
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
client.connect({socket!r})
request = json.dumps({{"args": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd()}}).encode() + b"\\n"
client.sendall(request[socket.send_fds(client, [request], [0, 1, 2]):])
reply = b""
while not reply.endswith(b"\\n"):
    chunk = client.recv(4096)
    if not chunk:
        sys.exit("embedding-ingest: the warm start went away")
    reply += chunk
code = json.loads(reply)["code"]
if code < 0:
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def _as_text(data: bytes) -> str:
    """Bytes as subprocess.run(text=True) decodes them: the locale's encoding, universal newlines."""
    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


class _WarmStart:
    """The fork server of this test process (one per pytest worker), started on first use; it ends
    when this process closes its pipe (at exit, or when the process dies)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: subprocess.Popen | None = None
        self._pending = b""
        self._dir: Path | None = None

    def _start(self, environment: dict[str, str]) -> None:
        import atexit
        import tempfile

        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="cli-warm-start-"))
            atexit.register(self.close)
        with (self._dir / "server.log").open("wb") as log:
            self._server = subprocess.Popen([sys.executable, "-c", _SERVER.format("()")], env=environment,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        self._pending = b""
        self._reply(time.monotonic() + 120)

    def _reply(self, deadline: float) -> dict[str, Any]:
        import select

        assert self._server is not None and self._server.stdout is not None
        fd = self._server.stdout.fileno()
        while b"\n" not in self._pending:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError
            chunk = os.read(fd, 65536)
            if not chunk:
                log = (self._dir / "server.log").read_text(errors="replace")[-3000:] if self._dir else ""
                raise RuntimeError(f"the CLI's fork server exited: {log}")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return json.loads(line)

    def _abandon(self, pid: int | None) -> None:
        """Kill the command's child (if it started) and the server; the next command starts afresh."""
        for victim in (pid, self._server.pid if self._server is not None else None):
            if victim is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
        if self._server is not None:
            self._server.wait(timeout=30)
            for pipe in (self._server.stdin, self._server.stdout):
                with contextlib.suppress(OSError):
                    pipe.close()
        self._server = None
        self._pending = b""

    def close(self) -> None:
        """End the server (EOF on its request pipe) and remove its files."""
        import shutil

        with self._lock:
            if self._server is not None:
                self._server.stdin.close()
                self._server.wait(timeout=30)
                self._server.stdout.close()
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)

    def run(self, command: list[str], args: tuple[str, ...],
            environment: dict[str, str]) -> subprocess.CompletedProcess:
        """`command` run by a child of the server; as subprocess.run(command, env=environment,
        capture_output=True, text=True, timeout=TIMEOUT_SECONDS)."""
        with self._lock:
            if self._server is None or self._server.poll() is not None:
                self._start(_server_environment())
            assert self._server is not None and self._server.stdin is not None and self._dir is not None
            out, err = self._dir / "stdout", self._dir / "stderr"
            request = {"args": list(args), "env": environment, "cwd": os.getcwd(), "stdout": str(out),
                       "stderr": str(err)}
            pid = None
            try:
                self._server.stdin.write(json.dumps(request).encode() + b"\n")
                self._server.stdin.flush()
                pid = self._reply(time.monotonic() + 60)["pid"]
                code = self._reply(time.monotonic() + TIMEOUT_SECONDS)["code"]
            except TimeoutError:
                self._abandon(pid)
                raise subprocess.TimeoutExpired(command, TIMEOUT_SECONDS, out.read_bytes(),
                                                err.read_bytes()) from None
            except BaseException:
                # Interrupted mid-command (pytest-timeout, Ctrl-C): the server's replies for this
                # command are still to come, so it is ended and the next command starts a new one.
                self._abandon(pid)
                raise
        return subprocess.CompletedProcess(command, code, _as_text(out.read_bytes()),
                                           _as_text(err.read_bytes()))


_warm = _WarmStart()


@dataclass
class Cli:
    home: Path
    settings: dict[str, str]
    fresh_process: bool = False  # a new interpreter per command, for tests about starting one

    def run(self, *args: str, code: int = 0, **env: str) -> subprocess.CompletedProcess:
        """Run a command; `env` adds or overrides settings for this call only."""
        environment = {k: v for k, v in os.environ.items() if k not in _FOREIGN_SETTINGS}
        environment.update({"EMBEDDING_INGEST_HOME": str(self.home), **self.settings, **env})
        command = [sys.executable, "-m", "embedding_ingest.cli", *args]
        startup = [name for name in environment if name in _IMPORT_TIME_VARIABLES] + [
            name for name in {**self.settings, **env}
            if name != "PYTHONPATH" and name.startswith(_STARTUP_VARIABLES)]
        if self.fresh_process or startup:
            done = subprocess.run(command, env=environment, capture_output=True, text=True,
                                  timeout=TIMEOUT_SECONDS)
        else:
            done = _warm.run(command, args, environment)
        assert done.returncode == code, (args, done.returncode, done.stdout[-2000:], done.stderr[-2000:])
        return done

    def json(self, *args: str, code: int = 0, **env: str) -> Any:
        """Run with --output json; stdout must parse as exactly one JSON document."""
        return self.json_stdout(*args, "--output", "json", code=code, **env)

    def json_stdout(self, *args: str, code: int = 0, **env: str) -> Any:
        """Run a command that always prints JSON; stdout must parse as exactly one JSON document."""
        return json.loads(self.run(*args, code=code, **env).stdout)


@contextmanager
def warm_command(bin_dir: Path) -> Iterator[Path]:
    """`bin_dir/embedding-ingest`, a command for shells (bash -c in the README tests) that runs each
    `embedding-ingest ARGS` warm: forked from a fork server started here (cli_zygote.serve_socket),
    with the caller's environment, working directory and standard streams, its exit code returned.
    The server ends with the block."""
    import shutil
    import tempfile

    where = Path(tempfile.mkdtemp(prefix="cli-warm-"))  # short: a socket path has ~100 characters
    environment = _server_environment()
    code = _SERVER.format(f"_socket({str(where / 'socket')!r})")
    with (where / "server.log").open("wb") as log:
        server = subprocess.Popen([sys.executable, "-c", code], env=environment, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=log)
    try:
        for _ in range(2):  # ready, then listening
            line = server.stdout.readline()
            assert line, (where / "server.log").read_text(errors="replace")[-3000:]
        command = bin_dir / "embedding-ingest"
        command.write_text(_CLIENT.format(python=sys.executable, socket=str(where / "socket"),
                                          import_time=_IMPORT_TIME_VARIABLES),
                           encoding="utf-8")
        command.chmod(0o755)
        yield command
    finally:
        server.stdin.close()
        server.wait(timeout=TIMEOUT_SECONDS)
        server.stdout.close()
        shutil.rmtree(where, ignore_errors=True)


def fast_cli(root: Path) -> Cli:
    """A CLI with its workspace under `root` whose local batches finish at their first poll."""
    return Cli(home=root / "home", settings=dict(FAST_LOCAL_PROVIDER))
