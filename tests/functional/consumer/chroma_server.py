"""`embedding-ingest snapshots serve` as a user runs it (a subprocess of the real CLI), and a stock
chromadb.HttpClient on it; the server is stopped on exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import chromadb


def cli_process(home: Path, *args: str) -> subprocess.Popen:
    """The CLI in a subprocess, with only this workspace's settings in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHROMA", "EMBEDDING", "DYNAMODB"))}
    env["EMBEDDING_INGEST_HOME"] = str(home)
    return subprocess.Popen([sys.executable, "-m", "embedding_ingest.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(home: Path, kind: str, directory: Path,
           ended: dict | None = None) -> Iterator[chromadb.api.ClientAPI]:
    """An HttpClient on `snapshots serve KIND --dir DIRECTORY`, once the server answers (60 s at most).
    On exit the server gets SIGTERM (as systemd or a container runtime stops it); `ended`, when given,
    receives its "port", "returncode" and "stderr"."""
    port = free_port()
    server = cli_process(home, "snapshots", "serve", kind, "--port", str(port), "--dir", str(directory))
    try:
        client = None
        deadline = time.monotonic() + 60
        while client is None:
            assert server.poll() is None, server.communicate()
            try:
                client = chromadb.HttpClient(host="127.0.0.1", port=port)
                client.heartbeat()
            except Exception:
                client = None
                assert time.monotonic() < deadline, "chroma server did not come up"
                time.sleep(0.3)
        yield client
    finally:
        server.terminate()
        try:
            _, err = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
        if ended is not None:
            ended.update(port=port, returncode=server.returncode, stderr=err)
