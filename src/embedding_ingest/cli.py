"""The `embedding-ingest` command line. Command groups live in embedding_ingest/console/."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from embedding_ingest.console import (
    aws_commands,
    context,
    data_commands,
    demo,
    published_commands,
    run_commands,
    schedule_commands,
    snapshot_commands,
    web_console,
)

app = typer.Typer(name="embedding-ingest", no_args_is_help=True, add_completion=False,
                  help="Receipt line/word embeddings: OpenAI Batch API -> published ChromaDB snapshots.")


@app.callback()
def main(home: Path | None = typer.Option(None, "--home", envvar="EMBEDDING_INGEST_HOME",
                                          help="Local workspace (default ./.embedding-ingest)"),
         region: str | None = typer.Option(None, "--region", help="AWS region (default: AWS_REGION, "
                                                                  "AWS_DEFAULT_REGION)")) -> None:
    if home is not None:
        os.environ["EMBEDDING_INGEST_HOME"] = str(home)
    if region:
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = region
    context.reset()


data_commands.register(app)
run_commands.register(app)
snapshot_commands.register(app)
published_commands.register(app)
demo.register(app)
aws_commands.register(app)
schedule_commands.register(app)
web_console.register(app)

if __name__ == "__main__":
    app()
