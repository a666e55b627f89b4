"""`objects ls` and `objects cp`: the object store as `aws s3 ls` / `aws s3 cp` show it, over whichever
store is configured (the workspace's directory, or the S3 bucket of CHROMADB_BUCKET).

Paths are `s3://BUCKET/KEY` or a bare KEY. On S3 the bucket is the one named (the configured one for a
bare key); locally there is one namespace and the bucket part is only a label, so a runbook's
`s3://chromadb-dev-shared-buckets-vectors-c239843/chunk_groups/RUN/` lists the workspace's
`chunk_groups/RUN/`. Output follows awscli/customizations/s3/subcommands.py: `ls` prints
`                           PRE chunk-0/` for each common prefix and `2026-12-06 23:30:38         99
groups.json` (local time, size in bytes, name below the listed "directory") for each object, or full
keys with `--recursive`. As `aws s3 ls` (ListCommand), a prefix that matches nothing exits 1 and a
listing of the whole store exits 0 even when it is empty (no key was asked for, so none is missing).
`cp` to `-` writes the object to stdout, to a path prints `download: s3://BUCKET/KEY to PATH`; a
missing key is AWS's 404 (exit 1).
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from embedding_ingest.cli import next_steps, workspace
from embedding_ingest.cli.entry import Panel
from embedding_ingest.cli.output import OutputFormat, OutputOption, emit, fail, guarded, hint, stderr
from embedding_ingest.exceptions import InvalidInputError

objects_app = typer.Typer(help="The object store (local directory or S3), as `aws s3` shows it.",
                          no_args_is_help=True)


class NoSuchKey(InvalidInputError):  # noqa: N818 - S3's error code
    """`objects cp` of a key that does not exist (S3 answers HeadObject with 404)."""


def _split(path: str) -> tuple[str | None, str]:
    """`s3://bucket/key` -> (bucket, key); a bare key -> (None, key)."""
    if not path.startswith("s3://"):
        return None, path.lstrip("/")
    bucket, _, key = path[len("s3://"):].partition("/")
    if not bucket:
        raise InvalidInputError(f"{path!r} names no bucket: s3://BUCKET/KEY")
    return bucket, key


def _store(bucket: str | None) -> tuple[Any, str]:
    """The object store for `bucket` and the bucket to show: the configured store (locally, whatever
    the bucket is named), or on S3 the bucket named."""
    settings = workspace.settings()
    if settings.uses_aws_objects and bucket and bucket != settings.chromadb_bucket:
        from embedding_ingest import backends
        from embedding_ingest.stores.s3_objects import S3ObjectStore

        return S3ObjectStore(backends.aws_client("s3", settings), bucket), bucket
    if not settings.uses_aws_objects:
        workspace.require_workspace()
    return workspace.objects(), bucket or settings.chromadb_bucket or "local"


def listing(objects: Any, prefix: str, *, recursive: bool) -> dict[str, Any]:
    """`aws s3 ls` of `prefix`: common prefixes and objects one level below the prefix's "directory"
    (everything under the prefix with `recursive`)."""
    directory = prefix[: prefix.rfind("/") + 1]
    common: list[str] = []
    found: list[dict[str, Any]] = []
    for info in sorted(objects.list(prefix), key=lambda o: o.key):
        rest = info.key[len(prefix):]
        if not recursive and "/" in rest:
            below = info.key[: len(prefix) + rest.index("/") + 1]
            if below not in common:
                common.append(below)
            continue
        found.append({"key": info.key, "size": info.size, "last_modified": info.last_modified,
                      "etag": info.etag, "name": info.key if recursive else info.key[len(directory):]})
    return {"prefix": prefix, "common_prefixes": common,
            "common_prefix_names": [p[len(directory):] for p in common], "objects": found}


def _ls_lines(result: dict[str, Any]) -> list[Any]:
    for name in result["common_prefix_names"]:
        sys.stdout.write(f"{'PRE'.rjust(30)} {name}\n")
    for item in result["objects"]:
        stamp = datetime.fromtimestamp(item["last_modified"]).strftime("%Y-%m-%d %H:%M:%S")
        sys.stdout.write(f"{stamp.ljust(19)} {str(item['size']).rjust(10)} {item['name']}\n")
    return []


@objects_app.command("ls")
def ls(path: str = typer.Argument("", help="s3://BUCKET/PREFIX or PREFIX (default: everything at the top)"),
       recursive: bool = typer.Option(False, "--recursive", help="Every key under the prefix, in full"),
       output: OutputFormat = OutputOption) -> None:
    """Objects and common prefixes under a prefix, as `aws s3 ls` prints them; exits 1 when a prefix
    matches nothing (0 for an empty store listed whole, as `aws s3 ls s3://BUCKET/`)."""
    bucket, prefix = guarded(output, lambda: _split(path))
    objects, shown = guarded(output, lambda: _store(bucket))
    result = guarded(output, lambda: listing(objects, prefix, recursive=recursive))
    emit({"bucket": shown, "location": objects.location, **result}, output, _ls_lines)
    if result["objects"] or result["common_prefixes"]:
        return
    if not prefix:  # nothing written yet: say what would write something
        if output is not OutputFormat.JSON:
            stderr.print(f"nothing in the object store yet ({objects.location})", markup=False,
                         highlight=False, soft_wrap=True)
        hint(output, guarded(output, lambda: next_steps.overall(workspace.ledger())))
        return
    if output is not OutputFormat.JSON:
        stderr.print(f"nothing under {prefix} in {objects.location}", markup=False, highlight=False,
                     soft_wrap=True)
    hint(output, "embedding-ingest objects ls chunk_groups/   (the runs' files; or intermediate/)")
    raise typer.Exit(1)


@objects_app.command("cp")
def cp(source: str = typer.Argument(..., help="s3://BUCKET/KEY or KEY"),
       destination: str = typer.Argument(..., help="A file or directory, or - for stdout"),
       output: OutputFormat = OutputOption) -> None:
    """Copy an object to a file (or to stdout with -), as `aws s3 cp s3://BUCKET/KEY PATH` does."""
    bucket, key = guarded(output, lambda: _split(source))
    objects, shown = guarded(output, lambda: _store(bucket))
    if not key or key.endswith("/") or guarded(output, lambda: objects.head(key)) is None:
        parent = key.rstrip("/").rpartition("/")[0]
        raise fail(NoSuchKey(f"An error occurred (404) when calling the HeadObject operation: "
                             f"Key \"{key}\" does not exist"), output, 1,  # as aws s3 cp exits
                   try_="embedding-ingest objects ls" + (f" {parent}/" if parent else ""))
    data = guarded(output, lambda: objects.get_bytes(key))
    if destination == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    target = Path(destination)
    if target.is_dir() or destination.endswith("/"):
        target = target / key.rsplit("/", 1)[-1]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except OSError as exc:
        raise fail(InvalidInputError(f"cannot write {str(target)!r}: {exc.strerror}"), output) from exc
    emit({"source": f"s3://{shown}/{key}", "destination": str(target), "size": len(data)}, output,
         lambda r: sys.stdout.write(f"download: {r['source']} to {destination}\n") and [])


def every_object(prefix: str = typer.Argument("", help="Key prefix (default: every object)",
                                              show_default=False),
                 output: OutputFormat = OutputOption) -> None:
    """Every object under a prefix, whole keys (`objects ls PREFIX --recursive`); exits 1 when a prefix
    matches nothing, as `aws s3 ls` does."""
    ls(prefix, recursive=True, output=output)


def register(app: typer.Typer) -> None:
    app.add_typer(objects_app, name="objects", rich_help_panel=Panel.MONITOR,
                  short_help="The object store, as `aws s3 ls/cp` show it.")
    # `ls` was a table of key/size/etag whose keys (up to ~90 characters) split over rows at 80 columns;
    # it is now `objects ls --recursive`, kept unlisted for the scripts that call it.
    app.command("ls", hidden=True, rich_help_panel=Panel.MONITOR)(every_object)
