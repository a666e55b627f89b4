"""One published version reads the same wherever a person sees it (the shortest prefix unique among the
kept versions, at least 8 characters, as `snapshots list` shows it and every --version accepts it);
--output json carries the whole id."""

from __future__ import annotations

import re

from pipeline import receipts_file

WIDE = "200"  # no line folds: each message is read whole


def test_a_version_is_shown_in_one_short_form_everywhere_and_whole_in_json(cli, tmp_path):
    cli.json("receipts", "import", str(receipts_file(tmp_path, 1)))
    cli.json("submit", "line")
    ran = cli.run("start-execution", "line", "--name", "only", COLUMNS=WIDE).stdout
    whole = cli.json("snapshots", "list", "line")["versions"][0]["version"]
    short = whole[:8]

    listed = cli.run("snapshots", "list", "line", COLUMNS=WIDE).stdout
    described = cli.run("describe-execution", "only", COLUMNS=WIDE).stdout
    queried = cli.run("query", "line", "TOTAL", "-n", "1", COLUMNS=WIDE).stdout
    pulled = cli.run("snapshots", "pull", "line", str(tmp_path / "pulled"), COLUMNS=WIDE).stdout
    rolled = cli.run("snapshots", "rollback", "line", short, COLUMNS=WIDE).stdout

    for shown in (ran, listed, described, queried, pulled, rolled):
        forms = set(re.findall(rf"\b{short}[0-9a-f]*", shown))
        assert forms == {short}, shown
    assert f"as lines version {short} (" in ran and f"as lines version {short} (" in described
    assert f"(version {short}, " in queried
    assert cli.json("describe-execution", "only")["summary"]["published_version"] == whole
    assert cli.json("query", "line", "TOTAL", "-n", "1")["version"] == whole
