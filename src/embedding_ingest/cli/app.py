"""The `embedding-ingest` command line. Command groups live in embedding_ingest/cli/."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from embedding_ingest.cli import (
    aws_commands,
    console_commands,
    data_commands,
    definition_commands,
    demo,
    label_commands,
    lock_commands,
    logs_commands,
    migrate_commands,
    object_commands,
    published_commands,
    receipt_commands,
    run_commands,
    schedule_commands,
    snapshot_commands,
    workspace,
)
from embedding_ingest.cli.entry import CliApp
from embedding_ingest.cli.errors import EXIT_CODES_HELP
from embedding_ingest.cli.output import DEBUG_VARIABLE, UTC_VARIABLE

app = CliApp(name="embedding-ingest", no_args_is_help=True, add_completion=False,
             pretty_exceptions_enable=False,
             help="Receipt line/word embeddings: OpenAI Batch API -> published ChromaDB snapshots. "
                  "The job in order: receipts import, submit, start-execution --until-idle, query.",
             epilog="Errors are one line: error: WHAT (WHY); try: COMMAND. " + EXIT_CODES_HELP
                    + " Commands that change something end with a `next:` line saying what to run next.")


def _version(asked: bool) -> None:
    """`--version`: `embedding-ingest X.Y.Z` (the installed package's metadata), exit 0."""
    if asked:
        from importlib.metadata import version

        print(f"embedding-ingest {version('embedding-ingest')}")
        raise typer.Exit(0)


@app.callback()
def main(home: Path | None = typer.Option(None, "--home", metavar="DIR", envvar="EMBEDDING_INGEST_HOME",
                                          help="Local workspace (default ./.embedding-ingest)"),
         region: str | None = typer.Option(None, "--region", help="AWS region (default: AWS_REGION, "
                                                                  "AWS_DEFAULT_REGION)"),
         debug: bool = typer.Option(False, "--debug", help=f"Show tracebacks (or {DEBUG_VARIABLE}=1)"),
         utc: bool = typer.Option(False, "--utc", help=f"Times in tables in UTC (or {UTC_VARIABLE}=1); "
                                                       "default local time"),
         _show_version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                            help="Print the version and exit")) -> None:
    if home is not None:
        os.environ["EMBEDDING_INGEST_HOME"] = str(home)
    if region:
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = region
    if debug:
        os.environ[DEBUG_VARIABLE] = "1"
    if utc:
        os.environ[UTC_VARIABLE] = "1"
    workspace.reset()


data_commands.register(app)
receipt_commands.register(app)
run_commands.register(app)
snapshot_commands.register(app)
published_commands.register(app)
demo.register(app)
aws_commands.register(app)
schedule_commands.register(app)
console_commands.register(app)
definition_commands.register(app)
lock_commands.register(app)
migrate_commands.register(app)  # issue 19
label_commands.register(app)  # issue 23
logs_commands.register(app)  # issue 25
object_commands.register(app)  # issue 25
