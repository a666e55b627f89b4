"""The console's JSON API on its own (Starlette's TestClient, real SQLite/objects/Chroma): executions
with filters and pages, one execution, its history and graph, a state's detail, batches, snapshots,
query, and the guarded actions."""

from __future__ import annotations

import time

import pytest
from console_workspace import FAILED, HOSTILE_TEXT, SUCCEEDED, console_workspace
from starlette.testclient import TestClient

from embedding_ingest.console.app import create_app
from embedding_ingest.snapshots.version_ids import short_version_of
from embedding_ingest.stores.records import BatchStatus, ItemKind

TOKEN = "test-token-123"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return console_workspace(tmp_path_factory.mktemp("console"))


@pytest.fixture(scope="module")
def client(workspace):
    with TestClient(workspace.app(), base_url="http://127.0.0.1") as client:
        yield client


def test_executions_are_listed_newest_first_with_filters_and_pages(client, workspace):
    listed = client.get("/api/executions").json()
    assert [e["name"] for e in listed["executions"]] == [FAILED, SUCCEEDED]
    assert listed["next_offset"] is None
    ok = listed["executions"][1]
    assert (ok["workflow"], ok["status"]) == ("line", "SUCCEEDED")
    assert ok["durationSeconds"] > 0
    # The published count comes from the execution's output: every line was published once.
    assert ok["published"] == workspace.workspace.ledger.count_items(ItemKind.LINE)["SUCCESS"] > 0

    def names(query):
        return [e["name"] for e in client.get(f"/api/executions?{query}").json()["executions"]]

    assert names("status=FAILED") == [FAILED]
    assert names("workflow=line") == [SUCCEEDED]
    first = client.get("/api/executions?limit=1").json()
    assert ([e["name"] for e in first["executions"]], first["next_offset"]) == ([FAILED], 1)
    second = client.get("/api/executions?limit=1&offset=1").json()
    assert ([e["name"] for e in second["executions"]], second["next_offset"]) == ([SUCCEEDED], None)


@pytest.mark.parametrize(("query", "words"), [("status=DONE", "status='DONE' is not valid"),
                                              ("limit=0", "limit=0 is out of range"),
                                              ("offset=x", "offset='x' is not a whole number")])
def test_a_bad_filter_is_a_clear_400(client, query, words):
    response = client.get(f"/api/executions?{query}")
    assert response.status_code == 400
    assert words in response.json()["message"]


def test_one_execution_with_its_summary_and_an_unknown_one(client, workspace):
    failed = client.get(f"/api/executions/{FAILED}").json()
    assert (failed["status"], failed["error"], failed["workflow"]) == \
        ("FAILED", "ReceiptStoreOffline", "word")
    ok = client.get(f"/api/executions/{SUCCEEDED}").json()
    assert ok["summary"]["embeddings_published"] == ok["published"]
    assert ok["summary"]["published_version"] == workspace.workspace.ledger.get_published("lines").version
    assert failed["summary"]["failed_state"] == "ListPendingWordBatches"
    missing = client.get("/api/executions/nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": "ExecutionDoesNotExist", "message": "no execution named 'nope'"}


def test_history_names_each_event_state_and_filters_failed_events(client):
    events = client.get(f"/api/executions/{FAILED}/history").json()["events"]
    assert events[0]["type"] == "ExecutionStarted" and events[-1]["type"] == "ExecutionFailed"
    entered = [e for e in events if e["type"] == "TaskStateEntered"]
    assert [e["stateName"] for e in entered] == ["ListPendingWordBatches"]
    failed = client.get(f"/api/executions/{FAILED}/history?failed_only=true").json()
    assert [e["type"] for e in failed["events"]] == ["TaskFailed", "ExecutionFailed"]
    assert failed["events"][0]["stateName"] == "ListPendingWordBatches"


def test_the_graph_colours_each_state_by_what_happened(client):
    failed = client.get(f"/api/executions/{FAILED}/graph").json()
    nodes = {n["name"]: n for n in failed["graph"]["nodes"]}
    assert nodes["ListPendingWordBatches"]["status"] == "caught"  # its Catch led to the Fail state
    assert nodes["ListPendingWordBatchesFailed"]["status"] == "failed"
    assert nodes["PollWordBatches"]["status"] == "not_entered"
    assert failed["legend"] == ["succeeded", "failed", "caught", "in_progress", "aborted", "not_entered"]

    ok = {n["name"]: n for n in client.get(f"/api/executions/{SUCCEEDED}/graph").json()["graph"]["nodes"]}
    poll = ok["PollBatches"]
    assert poll["status"] == "succeeded"
    assert poll["map"]["iterations"] == poll["map"]["iterations_succeeded"] > 0
    assert {n["name"] for n in poll["children"]["nodes"]} >= {"PollBatch", "PollBatchFailed"}
    assert ok["NoPendingBatches"]["status"] == "not_entered"


def test_selecting_a_state_gives_its_error_input_and_events(client):
    fail = client.get(f"/api/executions/{FAILED}/states/ListPendingWordBatchesFailed").json()
    assert (fail["status"], fail["error"]) == ("failed", "ReceiptStoreOffline")
    assert "<script>" in fail["cause"]  # kept verbatim in JSON; the page shows it as text
    task = client.get(f"/api/executions/{FAILED}/states/ListPendingWordBatches").json()
    assert task["status"] == "caught" and task["input"] == "{}"
    assert "TaskFailed" in [e["type"] for e in task["events"]]
    unknown = client.get(f"/api/executions/{FAILED}/states/Nope")
    assert unknown.status_code == 404 and "no state named 'Nope'" in unknown.json()["message"]


def test_a_definitions_run_execution_says_why_it_has_no_graph(tmp_path):
    from asl_local.invokers import InProcessInvoker
    from embedding_ingest.pipeline.engine_store import WorkflowEngine

    built = console_workspace(tmp_path)
    WorkflowEngine(built.workspace.ledger, InProcessInvoker({})).start_execution(
        "my-machine", {"StartAt": "Only", "States": {"Only": {"Type": "Pass", "End": True}}}, "custom-1", {})
    with TestClient(built.app(), base_url="http://127.0.0.1") as client:
        drawn = client.get("/api/executions/custom-1/graph").json()
        assert drawn["status"] == "SUCCEEDED" and drawn["graph"]["nodes"] == []
        # No ingest summary ("published nothing... next: submit line") for another state machine's run.
        described = client.get("/api/executions/custom-1").json()
        assert (described["workflow"], described["summary"], described["published"]) == \
            ("my-machine", {}, None)
        assert "'my-machine'" in drawn["graph"]["note"] and "definitions run" in drawn["graph"]["note"]
        # The history and its state names are still there to read.
        events = client.get("/api/executions/custom-1/history").json()["events"]
        assert [e["stateName"] for e in events if e["type"] == "PassStateEntered"] == ["Only"]


def test_batches_and_item_counts(client, workspace):
    body = client.get("/api/batches").json()
    ledger = workspace.workspace.ledger
    assert [b["batch_id"] for b in body["batches"]] == [b.batch_id for b in ledger.list_batches()]
    assert {b["status"] for b in body["batches"]} == {"COMPLETED"}
    # Input tokens submitted (issue 11) are on each summary: the page's Tokens column shows them.
    assert all(b["tokens"] > 0 for b in body["batches"])
    assert body["items"]["line"]["SUCCESS"] == ledger.count_items(ItemKind.LINE)["SUCCESS"]
    assert body["items"]["word"]["NONE"] == ledger.count_items(ItemKind.WORD)["NONE"] > 0
    assert client.get("/api/batches?status=PENDING").json()["batches"] == []
    # A page of `limit` from `offset`; next_offset is null on the last page.
    everything = body["batches"]
    first = client.get("/api/batches?limit=1").json()
    last = client.get(f"/api/batches?limit=1&offset={len(everything) - 1}").json()
    assert first["batches"] == everything[:1] and first["next_offset"] == (1 if len(everything) > 1 else None)
    assert last["batches"] == everything[-1:] and last["next_offset"] is None
    assert last["count"] == len(everything)


def test_the_dashboard_answers_from_the_ledger_and_the_executions(client, workspace):
    body = client.get("/api/dashboard").json()
    ledger = workspace.workspace.ledger
    assert body["items"]["line"]["SUCCESS"] == ledger.count_items(ItemKind.LINE)["SUCCESS"]
    batches = ledger.list_batches()
    assert sum(r["tokens_submitted"] for r in body["usage_by_day"]) == sum(b.tokens or 0 for b in batches)
    # Every published batch has its three moments, in order, and the version it went out in.
    assert [t["batch_id"] for t in body["timeline"]] == [b.batch_id for b in batches]
    for moment in body["timeline"]:
        assert moment["submitted_at"] <= moment["results_at"] <= moment["published_at"]
        assert moment["published_version"] == ledger.get_published("lines").version
    published = {e["name"]: e["published"] for e in body["executions"]}
    assert published[SUCCEEDED] > 0 and published[FAILED] is None  # failed: no summary to read


def test_snapshots_mark_the_current_version(client, workspace):
    databases = client.get("/api/snapshots").json()["databases"]
    current = workspace.workspace.ledger.get_published("lines")
    assert databases["lines"]["current"] == current.version
    assert [(v["version"], v["current"], v["count"]) for v in databases["lines"]["versions"]] == \
        [(current.version, True, current.count)]
    assert databases["words"] == {"current": None, "versions": []}


def test_versions_are_shown_in_their_short_form_with_the_whole_id_kept(client, workspace):
    ledger = workspace.workspace.ledger
    whole = ledger.get_published("lines").version
    short = short_version_of(ledger, "lines", whole)
    assert len(short) < len(whole)
    summary = client.get(f"/api/executions/{SUCCEEDED}").json()["summary"]
    assert f"lines version {short} (" in summary["message"] and whole not in summary["message"]
    assert (summary["published_version"], summary["published_version_short"]) == (whole, short)
    found = client.get("/api/query", params={"text": HOSTILE_TEXT, "n": 1}).json()
    assert (found["version"], found["version_short"]) == (whole, short)
    kept = client.get("/api/snapshots").json()["databases"]["lines"]["versions"]
    assert [(v["version"], v["short"], v["parent_short"]) for v in kept] == [(whole, short, None)]


def test_query_returns_the_nearest_published_lines(client):
    found = client.get("/api/query", params={"kind": "line", "text": HOSTILE_TEXT, "n": 3}).json()
    assert len(found["results"]) == 3
    assert found["results"][0]["document"] == HOSTILE_TEXT  # the same text is its own nearest
    assert found["results"][0]["distance"] <= found["results"][1]["distance"]
    nothing = client.get("/api/query", params={"kind": "word", "text": "total"})
    assert nothing.status_code == 409 and nothing.json()["error"] == "NothingPublishedError"
    assert client.get("/api/query", params={"text": "  "}).status_code == 400


def test_a_query_after_the_console_closed_is_a_503_and_opens_no_snapshot(workspace, monkeypatch):
    import embedding_ingest

    opened = []
    real = embedding_ingest.open_snapshot
    monkeypatch.setattr(embedding_ingest, "open_snapshot",
                        lambda *args, **kwargs: opened.append(real(*args, **kwargs)) or opened[-1])
    console = workspace.console()
    with TestClient(create_app(console), base_url="http://127.0.0.1") as client:
        assert client.get("/api/query", params={"text": HOSTILE_TEXT}).status_code == 200
        console.close()
        assert "closed" in repr(opened[0])
        for kind in ("line", "word"):  # the one it had open, and one it never opened
            late = client.get("/api/query", params={"kind": kind, "text": HOSTILE_TEXT})
            assert late.status_code == 503
            assert late.json() == {"error": "ConsoleClosed",
                                   "message": "the console is shutting down: it answers no more queries"}
        assert len(opened) == 1  # nothing opened after close(), so nothing left open


def test_the_page_and_vendored_layout_library_are_served_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/vendor/dagre/dagre.min.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert client.get("/static/vendor/dagre/dagre.min.js").status_code == 200
    assert client.get("/api/executions").headers["cache-control"] == "no-store"


def test_a_foreign_host_header_is_refused(workspace):
    # A DNS-rebinding page would reach 127.0.0.1 under its own host name.
    with TestClient(workspace.app(), base_url="http://attacker.example") as foreign:
        refused = foreign.get("/api/executions")
        assert refused.status_code == 400 and refused.json()["error"] == "InvalidHost"
    # Another machine reaches a console started with --host 0.0.0.0 by this machine's IP address.
    for address in ("http://192.0.2.7:8470", "http://[2001:db8::7]:8470"):
        with TestClient(workspace.app(), base_url=address) as remote:
            assert remote.get("/api/info").status_code == 200, address
    with TestClient(create_app(workspace.console(), allowed_hosts=("buildbox",)),
                    base_url="http://buildbox:8470") as named:
        assert named.get("/api/info").status_code == 200


def test_actions_are_refused_on_a_read_only_console(client):
    response = client.post("/api/actions/reset-batch", json={"batch_id": "x", "status": "PENDING"})
    assert response.status_code == 403 and response.json()["error"] == "ReadOnlyConsole"


def test_actions_need_the_start_up_token_in_a_header(workspace):
    ledger = workspace.workspace.ledger
    batch = ledger.list_batches()[0]
    with TestClient(workspace.app(allow_actions=True, token=TOKEN), base_url="http://127.0.0.1") as client:
        body = {"batch_id": batch.batch_id, "status": "FAILED"}
        assert client.post("/api/actions/reset-batch", json=body).status_code == 403
        wrong = client.post("/api/actions/reset-batch", json=body, headers={"X-Console-Token": "guess"})
        assert wrong.status_code == 403 and wrong.json()["error"] == "InvalidToken"
        # A cookie is no substitute for the header (a forged cross-site request would carry cookies).
        client.cookies.set("X-Console-Token", TOKEN)
        assert client.post("/api/actions/reset-batch", json=body).status_code == 403
        client.cookies.clear()
        assert ledger.get_batch(batch.batch_id).status is BatchStatus.COMPLETED

        changed = client.post("/api/actions/reset-batch", json=body, headers={"X-Console-Token": TOKEN})
        assert changed.status_code == 200 and changed.json()["status"] == "FAILED"
        assert ledger.get_batch(batch.batch_id).status is BatchStatus.FAILED
        restore = {"batch_id": batch.batch_id, "status": "COMPLETED"}
        assert client.post("/api/actions/reset-batch", json=restore,
                           headers={"X-Console-Token": TOKEN}).status_code == 200

        bad = client.post("/api/actions/rollback", json={"kind": "line", "version": "nope"},
                          headers={"X-Console-Token": TOKEN})
        assert bad.status_code == 409 and "nope" in bad.json()["message"]


@pytest.mark.slow
def test_an_execution_started_from_the_console_runs_to_its_end(workspace):
    with TestClient(workspace.app(allow_actions=True, token=TOKEN), base_url="http://127.0.0.1") as client:
        started = client.post("/api/actions/start-execution",
                              json={"workflow": "word", "name": "from-console"},
                              headers={"X-Console-Token": TOKEN})
        assert started.status_code == 202 and started.json()["name"] == "from-console"
        assert started.json()["recorded"] is True  # the page can open it at once
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            described = client.get("/api/executions/from-console")
            if described.status_code == 200 and described.json()["status"] != "RUNNING":
                break
            time.sleep(0.2)
        # No word batch was submitted: the run finds nothing to poll and succeeds.
        assert described.json()["status"] == "SUCCEEDED"
        nodes = {n["name"]: n["status"] for n in
                 client.get("/api/executions/from-console/graph").json()["graph"]["nodes"]}
        assert nodes["NoPendingWordBatches"] == "succeeded"


def test_a_rollback_from_the_console_moves_the_published_pointer(tmp_path):
    from pipeline import receipts_file

    built = console_workspace(tmp_path)
    ws = built.workspace
    first = ws.ledger.get_published("lines")
    ws.import_receipts(receipts_file(tmp_path, 1, start=3))
    ws.submit(ItemKind.LINE)
    assert ws.run(ItemKind.LINE, name="line-second").status.value == "SUCCEEDED"
    assert ws.ledger.get_published("lines").version != first.version

    with TestClient(built.app(allow_actions=True, token=TOKEN), base_url="http://127.0.0.1") as client:
        moved = client.post("/api/actions/rollback", json={"kind": "line", "version": first.version},
                            headers={"X-Console-Token": TOKEN})
        assert moved.status_code == 200 and moved.json()["version"] == first.version
        versions = client.get("/api/snapshots").json()["databases"]["lines"]["versions"]
        assert [v["version"] for v in versions if v["current"]] == [first.version]
    assert ws.ledger.get_published("lines").version == first.version
