"""Ctrl-C anywhere: one line saying what was stopped, that nothing is lost, and the command that
resumes; never a traceback.

Our SIGINT handler raises `Interrupted`, which is deliberately *not* a KeyboardInterrupt: Typer turns a
KeyboardInterrupt into a silent exit 130 (a bare `^C`), while `Interrupted` reaches the app's edge
(entry.CliGroup.main), which prints `interrupted_line()`. Everything the pipeline does is idempotent
and the local engine records an interrupted execution ABORTED (its `finally`), so "nothing is lost"
holds: rerunning resumes. Each command that knows better says what an interruption stops and how to
resume (`on_interrupt`); the default resumes by running the same command again.

The handler is installed by `launch.main` before the CLI's modules are imported (an import takes
~0.7 s, long enough to press Ctrl-C in), and again by the app for callers that skip the launcher."""

from __future__ import annotations

import shlex
import signal
import threading
from dataclasses import dataclass

PROGRAM = "embedding-ingest"


class Interrupted(BaseException):  # noqa: N818 - not an error: the user asked to stop
    """Ctrl-C (SIGINT), raised in the main thread by our handler; `by` names what stopped us."""

    def __init__(self, by: str = "Ctrl-C") -> None:
        super().__init__(by)
        self.by = by


@dataclass
class _Stopping:
    what: str | None = None
    kept: str | None = None
    resume: str | None = None


_stopping = _Stopping()
_already = threading.Event()


def _raise_interrupted(_signum: int, _frame: object) -> None:
    # A second Ctrl-C while the first unwinds (recording ABORTED, releasing a lock) must not cut that
    # short: only the first one raises.
    if _already.is_set():
        return
    _already.set()
    raise Interrupted()


def install() -> None:
    """Make Ctrl-C raise `Interrupted` (main thread only; elsewhere Python refuses handlers). Leaves a
    handler that is not Python's default alone (a command such as `schedule` may have its own)."""
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGINT)
    if current in (signal.default_int_handler, signal.SIG_DFL, _raise_interrupted):
        _already.clear()
        signal.signal(signal.SIGINT, _raise_interrupted)


def on_interrupt(what: str, *, kept: str | None = None, resume: str | None = None) -> None:
    """What a Ctrl-C from now on stops ("start-execution line --until-idle"), why nothing is lost
    (`kept`: "the running execution is recorded ABORTED and its batches stay active") and the command
    that resumes (None: nothing to resume)."""
    _stopping.what, _stopping.kept, _stopping.resume = what, kept, resume


def reset() -> None:
    _stopping.what = _stopping.kept = _stopping.resume = None


def interrupted_parts(argv: list[str], by: str = "Ctrl-C") -> tuple[str, str | None]:
    """(`stopped by Ctrl-C: WHAT (nothing is lost: KEPT)`, the command that resumes or None). Without a
    note from the command: the command line itself, and running it again resumes (every step is
    idempotent)."""
    command = shlex.join([PROGRAM, *argv])
    what = _stopping.what or command
    kept = f"nothing is lost: {_stopping.kept}" if _stopping.kept else "nothing is lost"
    resume = _stopping.resume if _stopping.what else command
    return f"stopped by {by}: {what} ({kept})", resume


def interrupted_line(argv: list[str], by: str = "Ctrl-C") -> str:
    """The one line printed for Ctrl-C (`by`: or SIGTERM): `stopped by Ctrl-C: WHAT (nothing is lost:
    KEPT); resume: COMMAND`."""
    stopped, resume = interrupted_parts(argv, by)
    return stopped + (f"; resume: {resume}" if resume else "")


def interrupted_document(argv: list[str], by: str = "Ctrl-C") -> dict[str, object]:
    """What --output json prints on stdout for Ctrl-C: the error document's keys (`error`
    "Interrupted", `message` and `try`, the command that resumes), with the same facts as the line."""
    stopped, resume = interrupted_parts(argv, by)
    return {"error": "Interrupted", "message": stopped, "try": resume, "transient": False}


__all__ = ["PROGRAM", "Interrupted", "install", "interrupted_document", "interrupted_line",
           "interrupted_parts", "on_interrupt", "reset"]
