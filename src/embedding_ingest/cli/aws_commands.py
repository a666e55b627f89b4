"""`embedding-ingest aws ...`: deployment helpers (the CloudFormation template of the stack)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from embedding_ingest.cli.entry import Panel
from embedding_ingest.cli.errors import CliError
from embedding_ingest.cli.output import OutputFormat, fail

aws_app = typer.Typer(help="Deploy to AWS: CloudFormation template (see src/embedding_ingest/aws/).",
                      no_args_is_help=True)


@aws_app.command("template",
                  short_help="Print (or write) the CloudFormation template of the whole deployment.")
def template(output_file: Path | None = typer.Option(None, "--output-file", "-f",
                                                      help="Write here instead of standard output"),
             image_uri: str | None = typer.Option(None, "--image-uri",
                                                  help="Fix the image in the template instead of the "
                                                       "ImageUri parameter"),
             output: OutputFormat = typer.Option(OutputFormat.JSON, "--output", "-o",
                                                 help="json (the only form of a template)",
                                                 case_sensitive=False)) -> None:
    """Print (or write) the CloudFormation template: bucket, ledger table, the seven step functions,
    the submit and start-execution functions on EventBridge Scheduler schedules, their roles, both
    state machines, optional EFS for the snapshot cache, and alarms with their SNS topic."""
    from embedding_ingest.aws.deploy.template import build_template

    if output is not OutputFormat.JSON:
        raise fail(CliError("a CloudFormation template prints as json only",
                            try_="embedding-ingest aws template --output json"), output)
    document = build_template(image_uri_param=image_uri is None, image_uri=image_uri)
    text = json.dumps(document, indent=2) + "\n"
    if output_file is None:
        typer.echo(text, nl=False)
        return
    output_file.parent.mkdir(parents=True, exist_ok=True)
    output_file.write_text(text)
    typer.echo(f"wrote {output_file} ({len(document['Resources'])} resources)", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(aws_app, name="aws", rich_help_panel=Panel.SETUP,
                  short_help="Deploy to AWS: the CloudFormation template.")
