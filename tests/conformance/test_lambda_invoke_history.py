"""The history of a lambda:invoke Task, on the local engine and on moto's interpreter: the same Task*
events in the same order, with the same resourceType, resource, region and parameters (what the
reference's `get-execution-history --query 'events[?type==`TaskFailed`]'` filters read). Field list:
https://docs.aws.amazon.com/step-functions/latest/apireference/API_HistoryEvent.html."""

from __future__ import annotations

import json

import pytest
from corpus import Case, load_cases, run_on_engine

from asl_local.history import to_aws_history
from asl_local.store import InMemoryExecutionStore

CASES = {case.id: case for case in load_cases()}
COMPARED = ("lambda_invoke_retry_until_success", "lambda_invoke_function_error_is_its_error_type",
            "lambda_invoke_timeout_seconds")


def task_events(events: list[dict]) -> list[tuple]:
    """(type, resourceType, resource, region, parameters, error) of every Task* event, in order."""
    shaped = []
    for event in events:
        if not event["type"].startswith("Task") or event["type"].startswith("TaskState"):
            continue
        details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
        parameters = details.get("parameters")
        shaped.append((event["type"], details.get("resourceType"), details.get("resource"),
                       details.get("region"), None if parameters is None else json.loads(parameters),
                       details.get("error")))
    return shaped


def local_history(case: Case) -> list[dict]:
    store = InMemoryExecutionStore()
    run_on_engine(case, store)
    [record] = store.list_executions()
    return to_aws_history(store.get_events(record.execution_arn))["events"]


@pytest.mark.slow
@pytest.mark.parametrize("case_id", COMPARED)
def test_task_events_match_moto(case_id, moto_corpus_server):
    case = CASES[case_id]
    moto_corpus_server.run(case)
    moto = moto_corpus_server.sfn.get_execution_history(executionArn=moto_corpus_server.last_execution_arn)

    ours = task_events(local_history(case))

    assert ours == task_events(moto["events"])
    assert ours and {shape[1:3] for shape in ours} == {("lambda", "invoke")}
