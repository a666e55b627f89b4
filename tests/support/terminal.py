"""The `embedding-ingest` command in a pseudo-terminal (80x40), as a person runs it: stdin, stdout and
stderr are the terminal, and Ctrl-C is the terminal's: the byte 0x03, which the line discipline turns
into SIGINT for the whole foreground process group (the CLI and any worker it started)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")
COLUMNS, LINES = 80, 40


@dataclass
class Session:
    """One command running in a pseudo-terminal; `screen` is everything it printed (ANSI removed)."""

    pid: int
    fd: int
    raw: bytes = b""
    exit_code: int | None = None
    pressed_at: float | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def screen(self) -> str:
        return ANSI.sub("", self.raw.decode("utf-8", errors="replace"))

    def _read(self, timeout: float) -> bool:
        """Read what is there within `timeout`; False once the terminal is closed (the process ended)."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:
            return False
        self.raw += chunk
        return bool(chunk)

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 240) -> None:
        """Keep reading the terminal until `condition()` holds; fails naming `what` otherwise."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"gave up waiting for {what}; screen:\n{self.screen[-3000:]}"
            assert self._read(0.1), f"the command ended before {what}; screen:\n{self.screen[-3000:]}"

    def wait_for_text(self, text: str, timeout: float = 240) -> None:
        self.wait_until(lambda: text in self.screen, repr(text), timeout)

    def press_ctrl_c(self) -> None:
        os.write(self.fd, b"\x03")
        self.pressed_at = time.monotonic()

    def finish(self, timeout: float = 240) -> int:
        """Read to the end and return the exit code (130 for Ctrl-C)."""
        deadline = time.monotonic() + timeout
        while self._read(0.1):
            assert time.monotonic() < deadline, f"the command did not end; screen:\n{self.screen[-3000:]}"
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        self.exit_code = os.waitstatus_to_exitcode(status)
        return self.exit_code


def start(args: list[str], env: dict[str, str], cwd: Path) -> Session:
    """Start `python -m embedding_ingest.cli ARGS` in a new pseudo-terminal of 80x40."""
    environment = {**env, "COLUMNS": str(COLUMNS), "LINES": str(LINES), "TERM": "xterm"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its stdin/stdout/stderr and controlling terminal
        try:
            os.chdir(cwd)
            # As an interactive shell does: a SIGINT ignored in the test process (seen in the full suite's
            # workers) is inherited through exec, and the CLI rightly leaves an ignored SIGINT alone.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execve(sys.executable, [sys.executable, "-m", "embedding_ingest.cli", *args], environment)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    return Session(pid=pid, fd=fd)
