"""The `embedding-ingest` command run as a user runs it: a subprocess with its own workspace
(EMBEDDING_INGEST_HOME in tmp). With --output json, stdout must be one JSON document; logs and
progress belong on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


@dataclass
class Cli:
    home: Path
    settings: dict[str, str]

    def run(self, *args: str, code: int = 0, **env: str) -> subprocess.CompletedProcess:
        """Run a command; `env` adds or overrides settings for this call only."""
        environment = {k: v for k, v in os.environ.items() if k not in _FOREIGN_SETTINGS}
        environment.update({"EMBEDDING_INGEST_HOME": str(self.home), **self.settings, **env})
        done = subprocess.run([sys.executable, "-m", "embedding_ingest.cli", *args], env=environment,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == code, (args, done.returncode, done.stdout[-2000:], done.stderr[-2000:])
        return done

    def json(self, *args: str, code: int = 0, **env: str) -> Any:
        """Run with --output json; stdout must parse as exactly one JSON document."""
        return self.json_stdout(*args, "--output", "json", code=code, **env)

    def json_stdout(self, *args: str, code: int = 0, **env: str) -> Any:
        """Run a command that always prints JSON; stdout must parse as exactly one JSON document."""
        return json.loads(self.run(*args, code=code, **env).stdout)


def fast_cli(root: Path) -> Cli:
    """A CLI with its workspace under `root` whose local batches finish at their first poll."""
    return Cli(home=root / "home", settings=dict(FAST_LOCAL_PROVIDER))
