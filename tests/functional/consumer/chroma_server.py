"""`embedding-ingest snapshots serve` as a user runs it (a subprocess of the real CLI), and a stock
chromadb.HttpClient on it; the server is stopped on exit."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import chromadb


def workspace_env(home: Path) -> dict[str, str]:
    """This process's environment with only the workspace at `home`'s settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHROMA", "EMBEDDING", "DYNAMODB"))}
    env["EMBEDDING_INGEST_HOME"] = str(home)
    return env


def cli_process(home: Path, *args: str) -> subprocess.Popen:
    """The CLI in a subprocess, with only this workspace's settings in its environment."""
    return subprocess.Popen([sys.executable, "-m", "embedding_ingest.cli", *args], env=workspace_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_readme_serve_example(home: Path, port: int) -> subprocess.CompletedProcess:
    """The README's python example of querying `snapshots serve` (with vectors from open_snapshot), run
    verbatim but for its port."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The published snapshot in your own programs", 1)[1].split("\n## ", 1)[0]
    (code,) = [f for f in re.findall(r"```python\n(.*?)```", section, flags=re.S) if "HttpClient" in f]
    return subprocess.run([sys.executable, "-c", code.replace("port=8000", f"port={port}")],
                          env=workspace_env(home), capture_output=True, text=True, timeout=300)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(home: Path, kind: str, directory: Path,
           ended: dict | None = None) -> Iterator[chromadb.api.ClientAPI]:
    """An HttpClient on `snapshots serve KIND --dir DIRECTORY`, once the server answers (60 s at most).
    On exit the server gets SIGTERM (as systemd or a container runtime stops it); `ended`, when given,
    receives its "port" (at once), "returncode" and "stderr" (on exit)."""
    port = free_port()
    if ended is not None:
        ended["port"] = port
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
