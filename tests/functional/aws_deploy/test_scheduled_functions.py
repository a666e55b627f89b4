"""The two functions EventBridge Scheduler invokes, with the events the template's schedules send:
embedding-start-execution starts at most one execution per schedule slot (Step Functions on moto's
server), embedding-submit submits every un-embedded item once (DynamoDB on moto, the fake OpenAI)."""

from __future__ import annotations

import json

import pytest
from fake_openai import FakeOpenAI
from moto_server import MotoEndpoint, unique_name
from pipeline import receipts_file

from embedding_ingest.aws.deploy.template import build_template
from embedding_ingest.aws.functions import handlers
from embedding_ingest.aws.functions.scheduled import slot_execution_name
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.receipts.importer import import_receipts
from embedding_ingest.stores.dynamo_ledger import DynamoLedger
from embedding_ingest.stores.records import BatchStatus, EmbeddingStatus, ItemKind


def _scheduled_event(logical_id: str, scheduled_time: str) -> dict:
    """The Input of a schedule in the template, as Scheduler delivers it for one slot."""
    schedule = build_template()["Resources"][logical_id]["Properties"]
    text = schedule["Target"]["Input"].replace("<aws.scheduler.scheduled-time>", scheduled_time)
    return json.loads(text)


@pytest.fixture
def state_machines(moto_endpoint: MotoEndpoint, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    client = moto_endpoint.client("stepfunctions")
    arns = {}
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    for kind in ("line", "word"):
        arns[kind] = client.create_state_machine(
            name=unique_name(f"{kind}-ingest"), definition=definition,
            roleArn="arn:aws:iam::123456789012:role/states")["stateMachineArn"]
        monkeypatch.setenv(f"{kind.upper()}_STATE_MACHINE_ARN", arns[kind])
    return arns


def test_slot_names_are_valid_execution_names():
    assert slot_execution_name("line", "2026-11-29T16:15:00Z") == "line-20261129T161500Z"
    assert slot_execution_name("word", "2026-11-29T17:15:00+01:00") == "word-20261129T161500Z"
    with pytest.raises(InvalidInputError, match="'scheduled_time'"):
        slot_execution_name("line", "<aws.scheduler.scheduled-time>")
    with pytest.raises(InvalidInputError, match="'workflow'"):
        slot_execution_name("lines", "2026-11-29T16:15:00Z")


def test_a_slot_fired_twice_starts_one_execution_and_the_next_slot_another(lambda_env, state_machines,
                                                                             moto_endpoint):
    client = moto_endpoint.client("stepfunctions")
    first = handlers.start_execution(_scheduled_event("LineExecutionSchedule", "2026-11-29T16:15:00Z"), None)
    again = handlers.start_execution(_scheduled_event("LineExecutionSchedule", "2026-11-29T16:15:00Z"), None)
    client.stop_execution(executionArn=first["executionArn"])  # moto's executions never finish by themselves
    later = handlers.start_execution(_scheduled_event("LineExecutionSchedule", "2026-11-29T16:30:00Z"), None)
    word = handlers.start_execution(_scheduled_event("WordExecutionSchedule", "2026-11-29T16:15:00Z"), None)

    assert first["started"] and first["name"] == "line-20261129T161500Z"
    # Step Functions answers a repeated name either with the same execution or ExecutionAlreadyExists
    assert not again["started"] or again["executionArn"] == first["executionArn"]
    executions = client.list_executions(stateMachineArn=state_machines["line"])["executions"]
    names = sorted(e["name"] for e in executions)
    assert names == ["line-20261129T161500Z", "line-20261129T163000Z"]
    assert later["started"] and word["started"]
    assert word["executionArn"].split(":")[-1] == "word-20261129T161500Z"


def test_a_slot_starts_nothing_while_its_workflow_runs_and_says_so_in_its_log_and_metric(
        lambda_env, state_machines, moto_endpoint, capsys):
    """A run can outlast a slot; the next slot of that workflow waits for the next fire after it ends."""
    def fire(schedule: str, slot: str) -> dict:
        return handlers.start_execution(_scheduled_event(schedule, slot), None)

    running = fire("LineExecutionSchedule", "2026-11-29T16:15:00Z")
    capsys.readouterr()

    skipped = fire("LineExecutionSchedule", "2026-11-29T16:30:00Z")
    other_workflow = fire("WordExecutionSchedule", "2026-11-29T16:30:00Z")

    assert running["started"] and other_workflow["started"]
    assert (skipped["started"], skipped["running"]) == (False, "line-20261129T161500Z")
    assert "line-20261129T161500Z" in skipped["reason"] and "RUNNING" in skipped["reason"]
    client = moto_endpoint.client("stepfunctions")
    names = [e["name"] for e in client.list_executions(stateMachineArn=state_machines["line"])["executions"]]
    assert names == ["line-20261129T161500Z"]
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (warning,) = [e for e in logged if e.get("running") == "line-20261129T161500Z"]
    assert warning["level"] == "WARNING" and warning["execution"] == "line-20261129T163000Z"
    metrics = [e for e in logged if "SkippedOverlappingRun" in e]
    assert [(m["SkippedOverlappingRun"], m["workflow"]) for m in metrics] == [([1.0], "line")]


def test_a_malformed_event_is_refused_naming_the_field(lambda_env, state_machines):
    with pytest.raises(InvalidInputError, match="'workflow' is 'both'"):
        handlers.start_execution({"workflow": "both", "scheduled_time": "2026-11-29T16:15:00Z"}, None)


def test_the_submit_schedule_submits_each_waiting_item_once(tmp_path, lambda_env, dynamodb_client,
                                                            dynamodb_table, fake_openai: FakeOpenAI):
    ledger = DynamoLedger(dynamodb_client, dynamodb_table)
    import_receipts(receipts_file(tmp_path, 2), ledger)
    lines = ledger.count_items(ItemKind.LINE)[EmbeddingStatus.NONE]
    words = ledger.count_items(ItemKind.WORD)[EmbeddingStatus.NONE]

    done = handlers.submit(_scheduled_event("SubmitSchedule", "2026-11-29T16:15:00Z"), None)
    again = handlers.submit(_scheduled_event("SubmitSchedule", "2026-11-29T16:30:00Z"), None)

    assert done["line"]["items"] == lines and done["word"]["items"] == words
    assert again == {"line": {"batches": 0, "items": 0, "refused": 0, "waiting_for_budget": 0},
                     "word": {"batches": 0, "items": 0, "refused": 0, "waiting_for_budget": 0}}
    for kind, count in ((ItemKind.LINE, lines), (ItemKind.WORD, words)):
        assert ledger.count_items(kind)[EmbeddingStatus.PENDING] == count
        batches = ledger.list_batches(batch_type=kind.batch_type)
        assert sum(b.item_count for b in batches) == count
        assert all(b.provider_batch_id and b.status is BatchStatus.PENDING for b in batches)
    assert len(fake_openai.batches_created()) == len(ledger.list_batches())
