"""The server half of cli_runner's warm start: a Python process that has imported the command line
(and the modules its commands load: Chroma, the steps, the SDKs) once, then forks one child per
command. Each child is a whole process of its own, as `python -m embedding_ingest.cli ARGS` would be:
its environment, working directory, argv, sys.path and standard streams are set from the request, it
runs the same entry point (embedding_ingest.cli.launch.main) and exits as that interpreter begins
to: non-daemon threads joined, atexit handlers run (logging's flush, weakref finalizers, pools),
cyclic garbage collected, streams flushed, the same exit code. Then it leaves with os._exit, skipping
the module teardown: freeing the heap it shares with the server copies every page of it (~0.5 s of
CPU per command, more than most commands cost). Only the ~1.3 s of imports is shared.

Protocol (newline-delimited JSON on the pipes the runner started us with): the runner writes
{"args", "env", "cwd", "stdout", "stderr"} (the last two: files the child writes its streams to);
we answer {"pid"} at once and {"code"} (as subprocess's returncode: -N for a signal) when the child
has exited. EOF on the request pipe ends the server.

Started as `python -c` (no __main__ file, like `-m`: spawned pool workers re-import no main module)."""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import select
import signal
import socket
import sys
import threading
import time

# What commands import lazily; imported here once instead of in every child. None starts a thread.
PRELOAD = ("embedding_ingest.cli.app", "embedding_ingest.cli.launch", "chromadb",
           "embedding_ingest.steps.registry", "embedding_ingest.pipeline.local_backend",
           "embedding_ingest.consumer.snapshot", "openai", "boto3")
# sys.argv[0] of `python -m embedding_ingest.cli` (the package's __main__.py).
MAIN_PATH_MODULE = "embedding_ingest.cli"


def _output_files(request: dict) -> dict[int, int]:
    """The pipe protocol's streams: stdout and stderr to the files the request names."""
    return {fd: os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            for fd, name in ((1, "stdout"), (2, "stderr"))}


def _child(request: dict, channels: tuple, base_path: list[str], streams: dict[int, int]) -> None:
    """In the forked child: become the requested process (`streams`: standard fd -> open fd to put
    there), then run the CLI; never returns (it leaves by _exit)."""
    for channel in channels:
        channel.close()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    for fd, opened in streams.items():
        os.dup2(opened, fd)
    for opened in set(streams.values()) - set(streams):
        os.close(opened)
    # As `python -m` builds it: the working directory first, then PYTHONPATH, then the installation.
    extra = [entry for entry in request["env"].get("PYTHONPATH", "").split(os.pathsep) if entry]
    sys.path[:] = [os.getcwd(), *extra, *base_path]
    package = sys.modules[MAIN_PATH_MODULE]
    sys.argv = [os.path.join(os.path.dirname(package.__file__), "__main__.py"), *request["args"]]
    from embedding_ingest.cli.launch import main

    try:
        main()
        code = 0
    except SystemExit as stop:
        code = _exit_code(stop.code)
    except KeyboardInterrupt:  # as the interpreter does: die by the signal
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 130
    except BaseException:  # noqa: BLE001 - as the interpreter reports an uncaught exception
        sys.excepthook(*sys.exc_info())
        code = 1
    _exit(code)


def _exit_code(code: object) -> int:
    """sys.exit's argument as the interpreter turns it into an exit status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _exit(code: int) -> None:
    """The interpreter's exit up to the module teardown (Py_FinalizeEx's first steps), then _exit."""
    threading._shutdown()  # noqa: SLF001 - what the interpreter calls first: joins non-daemon threads
    atexit._run_exitfuncs()  # noqa: SLF001
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _prepared() -> tuple:
    """Take the runner's pipes off stdin/stdout, preload; returns (requests, replies, base_path)."""
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):  # the children's stdin is /dev/null; stdout is set per request
        os.dup2(null, fd)
    os.close(null)
    # -c put "" (the working directory) first; each child puts its own working directory there.
    base_path = sys.path[1:]
    for module in PRELOAD:
        __import__(module)
    # The children's collections then skip the preloaded objects (live for good) instead of copying
    # every page they sit on.
    gc.collect()
    gc.freeze()
    replies.write(json.dumps({"ready": os.getpid()}) + "\n")
    return requests, replies, base_path


def serve() -> None:
    """Preload, then serve requests until the runner closes the request pipe."""
    requests, replies, base_path = _prepared()
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request, (requests, replies), base_path, _output_files(request))
        replies.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n")


def _session(connection: socket.socket, channels: tuple, base_path: list[str]) -> None:
    """A forked session for one client (the `embedding-ingest` command cli_runner.warm_command writes):
    its request and its stdin, stdout and stderr come over the socket; its command runs in a child of
    the session, whose exit code goes back to the client. Never returns."""
    data, fds, _, _ = socket.recv_fds(connection, 1 << 16, 3)
    while not data.endswith(b"\n"):
        data += connection.recv(1 << 16)
    pid = os.fork()
    if pid == 0:
        _child(json.loads(data), (*channels, connection), base_path, dict(zip((0, 1, 2), fds, strict=True)))
    for fd in fds:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    connection.sendall(json.dumps({"code": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
    os._exit(0)


def serve_socket(path: str) -> None:
    """Preload, then serve clients on the unix socket `path`, each in a session of its own (clients may
    run at once: `a | b`), until the runner closes the request pipe; then wait for every session."""
    requests, replies, base_path = _prepared()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    replies.write(json.dumps({"listening": path}) + "\n")
    sessions: set[int] = set()
    while True:
        ready = select.select([listener, requests], [], [], 1.0)[0]
        for pid in list(sessions):  # reaped here (waited for: their CPU counts as ours)
            if os.waitpid(pid, os.WNOHANG)[0]:
                sessions.discard(pid)
        if requests in ready and not requests.readline():
            break
        if listener in ready:
            connection, _ = listener.accept()
            pid = os.fork()
            if pid == 0:
                _session(connection, (requests, replies, listener), base_path)
            connection.close()
            sessions.add(pid)
    listener.close()
    for pid in sessions:
        os.waitpid(pid, 0)
