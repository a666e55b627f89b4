"""`definitions render` and `demo` through the real command line."""

from __future__ import annotations

import json

import pytest

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

    # The hashing model keeps this fast; test_minilm_model.py runs the real one.
    done = cli.run("demo", "--workspace", str(workspace), "--model", "local-hash-ngram-v1",
                   "--output", "json", LOCAL_PROVIDER_POLLS_PER_STAGE="1")
    summary = json.loads(done.stdout)

    assert summary["workspace"] == str(workspace) and summary["receipts_imported"] > 0
    assert summary["model"] == "local-hash-ngram-v1"
    assert "embedding with local-hash-ngram-v1: a hashing stand-in for OpenAI's model" in done.stderr
    # The closing export is absolute (it still points at the workspace after a `cd`) and names the
    # model, so later commands in the workspace embed as its snapshots were.
    assert done.stderr.strip().splitlines()[-1] == (
        f"to look around this workspace: export EMBEDDING_INGEST_HOME={workspace.resolve()}"
        " EMBEDDING_MODEL=local-hash-ngram-v1")
    for database in ("lines", "words"):
        published = summary[database]
        assert published["items_submitted"] > 0
        assert published["published_embeddings"] == published["items_submitted"]
        assert published["published_version"]
        assert all(run["status"] == "SUCCEEDED" for run in published["executions"])
        assert len(published["results"]) == 3 and all(r["id"] and r["text"] for r in published["results"])
    assert (workspace / "ledger.sqlite3").exists() and not cli.home.exists()  # nothing outside --workspace
