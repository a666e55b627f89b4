"""ProcessPoolInvoker: heavy functions run in worker processes; errors keep their names."""

from __future__ import annotations

import json
import os

import pytest
from workflow_toys import fixture, make_engine, toy_process_target

from asl_local.errors import (
    FunctionNotFoundError,
    RemoteTaskError,
    TaskProcessCrashedError,
)
from asl_local.invokers import InProcessInvoker, ProcessPoolInvoker, function_name_of
from asl_local.store import ExecutionStatus

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


@pytest.fixture(scope="module")
def pool_invoker():
    with ProcessPoolInvoker(toy_process_target, target_args=("t1",),
                            process_functions={"whoami", "corrupt"}, max_workers=2) as invoker:
        yield invoker


def test_function_name_is_the_last_arn_segment():
    assert function_name_of(ARN + "embedding-vector-compact") == "embedding-vector-compact"
    assert function_name_of("embedding-list-pending") == "embedding-list-pending"


def test_in_process_invoker_refuses_an_unknown_function_naming_it():
    with pytest.raises(FunctionNotFoundError, match="'nope'.*known: add"):
        InProcessInvoker({"add": lambda p: p}).invoke(ARN + "nope", {})


def test_process_functions_run_in_another_process_with_the_target_args(pool_invoker):
    result = pool_invoker.invoke(ARN + "whoami", {"x": 1})

    assert result["pid"] != os.getpid()
    assert (result["tag"], result["echo"]) == ("t1", {"x": 1})


def test_a_worker_error_keeps_its_class_name_even_if_it_cannot_be_unpickled(pool_invoker):
    with pytest.raises(RemoteTaskError) as failed:
        pool_invoker.invoke(ARN + "corrupt", {"key": "intermediate/x/chunk-0/"})

    assert failed.value.error_name == "CorruptObjectError"
    assert "intermediate/x/chunk-0/" in failed.value.message


def test_other_functions_run_in_the_calling_process():
    invoker = ProcessPoolInvoker(toy_process_target, target_args=("here",), process_functions=set())

    assert invoker.invoke(ARN + "whoami", {})["pid"] == os.getpid()
    invoker.close()


def test_a_crashed_worker_is_reported_and_the_pool_recovers():
    with ProcessPoolInvoker(toy_process_target, target_args=("t",), process_functions={"whoami", "die"},
                            max_workers=1) as invoker:
        with pytest.raises(TaskProcessCrashedError, match="'die'"):
            invoker.invoke(ARN + "die", {})
        assert invoker.invoke(ARN + "whoami", {})["tag"] == "t"


def test_map_iterations_run_in_parallel_worker_processes_through_the_engine(pool_invoker):
    definition = fixture("map_concurrency")
    definition["States"]["FanOut"]["ItemProcessor"]["States"]["Work"]["Resource"] = ARN + "whoami"
    engine, _, _ = make_engine(pool_invoker)

    record = engine.start_execution("line", definition, "pool", {"run_id": "r", "jobs": list("abcdef")})

    assert record.status is ExecutionStatus.SUCCEEDED
    results = json.loads(record.output)["results"]
    assert [r["echo"]["job"] for r in results] == list("abcdef")
    assert os.getpid() not in {r["pid"] for r in results}


def test_a_worker_error_is_caught_by_name_in_the_engine(pool_invoker):
    definition = fixture("catch_to_fail")
    definition["States"]["Explode"]["Resource"] = ARN + "corrupt"
    engine, _, _ = make_engine(pool_invoker)

    record = engine.start_execution("line", definition, "remote", {"key": "k1"})

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "CorruptObjectError")
