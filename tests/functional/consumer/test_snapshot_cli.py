"""The CLI over published snapshots as a user runs it: query with --where/--version and metadata
columns, verify naming a damaged object by key (exit 1), and a rollback onto it that moves nothing."""

from __future__ import annotations

import json
import subprocess

import pytest
from cli_runner import Cli
from pipeline import make_workspace

from embedding_ingest.consumer import open_snapshot
from embedding_ingest.snapshots import read_manifest, read_version


def _cli(ws, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    return Cli(home=ws.settings.home, settings={}).run(*args, code=code)


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory, ingest_lines):
    tmp = tmp_path_factory.mktemp("snapshot-cli")
    ws = make_workspace(tmp, dimensions=32)
    ingest_lines(ws, tmp, 2, 0)
    ingest_lines(ws, tmp, 1, 2)
    return ws


def test_query_filters_by_metadata_and_reads_a_kept_version(two_versions):
    ws = two_versions
    older, newer = ws.ledger.list_versions("lines")[-1], ws.ledger.get_published("lines")
    got = json.loads(_cli(ws, "query", "line", "TOTAL", "-n", "50", "--where", '{"receipt_id": 1}',
                          "--output", "json").stdout)
    assert got["version"] == newer.version and got["results"]
    assert {r["metadata"]["receipt_id"] for r in got["results"]} == {1}
    kept = json.loads(_cli(ws, "query", "line", "TOTAL", "-n", "500", "--version", older.version,
                           "--output", "json").stdout)
    assert kept["version"] == older.version and len(kept["results"]) == older.count
    narrow = _cli(ws, "query", "line", "TOTAL", "-n", "3").stdout  # 80 columns: metadata columns give way
    wide = _cli(ws, "query", "line", "TOTAL", "-n", "3", "--wide").stdout
    table, _, note = narrow.rpartition("┘")
    assert "merchant_name" not in table and "merchant_name" in wide and "receipt_id" in table
    assert "merchant_name left out to fit 80 columns; --wide" in note  # said, not dropped silently
    wrong = _cli(ws, "query", "line", "TOTAL", "--where", "[1, 2]", code=2)
    assert "--where" in wrong.stderr and "JSON object" in wrong.stderr


def _shown_versions(ws) -> list[str]:
    """The version column of `snapshots list line` at 80 columns, as a user reads it."""
    table = _cli(ws, "snapshots", "list", "line").stdout
    return [line.split("│")[1].strip() for line in table.splitlines()
            if line.startswith("│") and "version" not in line]


def test_every_version_option_accepts_the_prefix_snapshots_list_shows(two_versions, tmp_path):
    ws = two_versions
    older = ws.ledger.list_versions("lines")[-1]
    shown = _shown_versions(ws)
    assert len(shown) == 2 and all(len(v) == 8 for v in shown), shown
    prefix = next(v for v in shown if older.version.startswith(v))

    kept = json.loads(_cli(ws, "query", "line", "TOTAL", "-n", "500", "--version", prefix,
                           "--output", "json").stdout)
    assert kept["version"] == older.version and len(kept["results"]) == older.count
    pulled = json.loads(_cli(ws, "snapshots", "pull", "line", str(tmp_path / "pulled"), "--version", prefix,
                             "--output", "json").stdout)
    assert (pulled["version"], pulled["count"]) == (older.version, older.count)
    with open_snapshot("line", home=ws.settings.home, version=prefix) as snap:
        assert (snap.version, snap.count()) == (older.version, older.count)

    short = _cli(ws, "query", "line", "TOTAL", "--version", prefix[:5], code=2).stderr
    assert short.startswith(f"error: version '{prefix[:5]}' of 'lines' is too short (give at least 8 ")
    assert short.rstrip().endswith("try: embedding-ingest snapshots list line")
    missing = _cli(ws, "snapshots", "pull", "line", str(tmp_path / "none"), "--version", "0123456789ab",
                   code=2).stderr
    assert "'0123456789ab' of 'lines' is not among the kept versions" in missing


def test_verify_names_the_damaged_archive_and_rollback_onto_it_moves_nothing(two_versions):
    ws = two_versions
    older, newer = ws.ledger.list_versions("lines")[-1], ws.ledger.get_published("lines")
    clean = _cli(ws, "snapshots", "verify", "line", "--all-versions", "--output", "json")
    assert json.loads(clean.stdout)["ok"]
    base = read_version(ws.objects, older).segments[0]
    archive_key = read_manifest(ws.objects, base.key).archive_key
    path = ws.settings.objects_dir / archive_key
    data = bytearray(path.read_bytes())
    data[2048] ^= 0xFF
    path.write_bytes(bytes(data))

    report = json.loads(_cli(ws, "snapshots", "verify", "--all-versions", "--output", "json", code=1).stdout)
    lines = next(d for d in report["databases"] if d["database"] == "lines")
    assert [p["key"] for p in lines["problems"]] == [archive_key] and not report["ok"]

    failed = _cli(ws, "snapshots", "rollback", "line", older.version, code=1)
    assert failed.stderr.startswith("error: corrupt object ") and "Traceback" not in failed.stderr
    assert ws.ledger.get_published("lines").version == newer.version
