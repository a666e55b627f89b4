"""snapshots rollback through the real command line: the published pointer moves back to a kept
version, and queries then read that version."""

from __future__ import annotations

import json
from collections import Counter

from pipeline import receipts_file

# More neighbours than either version has lines, so a query returns the whole published version.
EVERY_LINE = "1000"
QUERY_TEXT = "TOTAL"


def published_lines_by_image(cli) -> Counter:
    found = cli.json("query", "line", QUERY_TEXT, "-n", EVERY_LINE)
    return Counter(result["metadata"]["image_id"] for result in found["results"])


def test_rollback_moves_the_pointer_back_and_queries_read_the_older_version(cli, tmp_path):
    first_import = cli.json("receipts", "import", str(receipts_file(tmp_path, 2)))
    cli.json("submit", "line")
    older = cli.json("start-execution", "line", "--name", "first")
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1, start=2)))
    cli.json("submit", "line")
    newer = cli.json("start-execution", "line", "--name", "second")
    older_version, newer_version = (json.loads(run["output"])["final_merge_result"]["snapshot_version"]
                                    for run in (older, newer))
    listed = cli.json("snapshots", "list", "line")["versions"]
    assert {(v["version"], v["current"]) for v in listed} == {(older_version, False), (newer_version, True)}
    before = published_lines_by_image(cli)
    assert set(before) == {"sroie-000", "sroie-001", "sroie-002"}

    rolled = cli.json("snapshots", "rollback", "line", older_version)

    assert (rolled["version"]["version"], rolled["version"]["count"]) == (
        older_version, first_import["lines_added"])
    # The newer version's own lines stay SUCCESS in the ledger but are not in the older version.
    assert rolled["success_items_not_in_version"] == before["sroie-002"]
    listed = cli.json("snapshots", "list", "line")["versions"]
    assert [v["version"] for v in listed if v["current"]] == [older_version]
    after = published_lines_by_image(cli)
    assert after == Counter({image: before[image] for image in ("sroie-000", "sroie-001")})
    assert sum(after.values()) == first_import["lines_added"]


def test_rollback_to_the_current_version_says_so_and_changes_nothing(cli, tmp_path):
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1)))
    cli.json("submit", "line")
    cli.json("start-execution", "line", "--name", "only")
    current = cli.json("snapshots", "list", "line")["versions"][0]
    assert current["current"]

    shown = cli.run("snapshots", "rollback", "line", current["version"][:8])

    assert shown.stdout.splitlines()[0] == "Already the current version (nothing changed)"
    assert "Rolled back" not in shown.stdout
    assert shown.stderr.strip() == ("next: embedding-ingest snapshots list line   (the kept versions to roll "
                                    "back to)")
    again = cli.json("snapshots", "rollback", "line", current["version"])
    assert again["changed"] is False and again["version"]["version"] == current["version"]
    after = cli.json("snapshots", "list", "line")["versions"]
    assert [(v["version"], v["current"], v["published_at"]) for v in after] == [
        (current["version"], True, current["published_at"])]
