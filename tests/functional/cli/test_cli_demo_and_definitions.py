"""`definitions render` and `demo` through the real command line."""

from __future__ import annotations

import json
import subprocess

import pytest

from embedding_ingest.cli.demo import MARKER

NAMES = {"line": ("ListPendingBatches", "FinalMerge", "MarkBatchesComplete"),
         "word": ("ListPendingWordBatches", "WordFinalMerge", "MarkWordBatchesComplete")}


def next_states(spec: dict) -> set[str]:
    targets = {spec.get("Next"), spec.get("Default")}
    targets |= {rule.get("Next") for rule in spec.get("Choices", []) + spec.get("Catch", [])}
    return targets - {None}


@pytest.mark.parametrize("kind", ["line", "word"])
def test_definitions_render_prints_a_valid_state_machine(cli, kind):
    definition = cli.json_stdout("definitions", "render", kind)

    states = definition["States"]
    start, final_merge, mark_complete = NAMES[kind]
    assert definition["StartAt"] == start
    assert {final_merge, mark_complete} <= set(states)
    assert states[final_merge]["Next"] == mark_complete
    dangling = {(name, target) for name, spec in states.items() for target in next_states(spec)
                if target not in states}
    assert not dangling
    assert all(spec["Retry"] and spec["Catch"] for spec in states.values() if spec["Type"] == "Task")


def test_demo_publishes_every_submitted_line_and_word_and_answers_its_example_queries(cli, tmp_path):
    workspace = tmp_path / "demo"
    workspace.mkdir()  # as an earlier demo left it: its marker, and what the user added since
    (workspace / MARKER).write_text("earlier demo\n")
    (workspace / "pulled-snapshot").mkdir()

    # The hashing model keeps this fast; test_minilm_model.py runs the real one.
    done = cli.run("demo", "--workspace", str(workspace), "--model", "local-hash-ngram-v1",
                   "--output", "json", LOCAL_PROVIDER_POLLS_PER_STAGE="1", COLUMNS="80")
    summary = json.loads(done.stdout)
    said = " ".join(done.stderr.split())  # the progress as a sentence, wherever the lines wrapped

    assert summary["workspace"] == str(workspace) and summary["receipts_imported"] > 0
    assert summary["model"] == "local-hash-ngram-v1"
    assert "embedding with local-hash-ngram-v1: a hashing stand-in for OpenAI's model" in said
    # Batches take polls: the loop says it polls again, never "run again later, or use --until-idle".
    assert "; polling again" in said and "--until-idle" not in said
    # Laid out for the terminal as start-execution's lines are (only the workspace's path, one word,
    # may pass 80 columns), every count with its thousands separator.
    lines = done.stderr.splitlines()
    assert all(len(line) <= 80 and line == line.rstrip() for line in lines if str(workspace) not in line)
    words = summary["words"]["items_submitted"]
    assert words >= 1000 and f"{summary['lines']['items_submitted']} lines, {words:,} words" in said
    assert f"submitted {words:,} words in " in said and f"published {words:,} embeddings" in said
    # The closing export is absolute (it still points at the workspace after a `cd`) and names the
    # model, so later commands in the workspace embed as its snapshots were; broken with a `\` to fit
    # the width, it still pastes into a shell as one command.
    export = "\n".join(lines[lines.index("to look around this workspace:") + 1:])
    pasted = subprocess.run(["bash", "-c", export + '\necho "$EMBEDDING_INGEST_HOME $EMBEDDING_MODEL"'],
                            capture_output=True, text=True, check=True)
    assert pasted.stdout == f"{workspace.resolve()} local-hash-ngram-v1\n"
    for database in ("lines", "words"):
        published = summary[database]
        assert published["items_submitted"] > 0
        assert published["published_embeddings"] == published["items_submitted"]
        assert published["published_version"]
        assert all(run["status"] == "SUCCEEDED" for run in published["executions"])
        assert len(published["results"]) == 3 and all(r["id"] and r["text"] for r in published["results"])
        # What each result was embedded as: a word with its row neighbours (why words printed beside
        # the query come up), a line with the rows above and below; never the padding's <EDGE>.
        assert all(r["text"] in r["embedded"] and "<EDGE>" not in r["embedded"] for r in published["results"])
    assert any(r["embedded"] != r["text"] for r in summary["words"]["results"])
    assert (workspace / "ledger.sqlite3").exists() and not cli.home.exists()  # nothing outside --workspace
    # The earlier demo's workspace was replaced, and this one is marked for the next demo to replace.
    assert not (workspace / "pulled-snapshot").exists() and (workspace / MARKER).is_file()


@pytest.mark.parametrize("default", [False, True], ids=["--workspace", "default"])
def test_demo_refuses_a_directory_an_earlier_demo_did_not_make_and_deletes_nothing(cli, tmp_path, default):
    # A mistyped --workspace (., ~, a project), or a $EMBEDDING_INGEST_HOME/demo the user filled.
    precious = cli.home / "demo" if default else tmp_path / "precious"
    (precious / "notes").mkdir(parents=True)
    (precious / "thesis.txt").write_text("keep\n")
    (precious / "notes" / "draft.txt").write_text("keep too\n")
    before = sorted(str(p.relative_to(precious)) for p in precious.rglob("*"))

    done = cli.run("demo", *([] if default else ["--workspace", str(precious)]), code=2)

    assert sorted(str(p.relative_to(precious)) for p in precious.rglob("*")) == before
    assert (precious / "thesis.txt").read_text() == "keep\n"
    assert done.stderr.splitlines() == [
        f"error: {precious} is not empty and not a workspace an earlier demo made (the demo wipes its "
        "workspace); try: embedding-ingest demo --workspace NEW_DIR   (a new or empty directory; or "
        f"remove {precious} yourself)"]
    assert done.stdout == ""


def test_demo_help_says_which_workspace_it_wipes(cli):
    shown = " ".join(cli.run("demo", "--help", COLUMNS="200").stdout.split())
    assert "wiped first: a new or empty directory, or an earlier demo's (any other is refused, nothing " \
           "deleted)" in shown
