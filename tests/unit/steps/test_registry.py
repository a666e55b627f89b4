from __future__ import annotations

import io
import json
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest
from steps_world import make_items, submit_batch

from embedding_ingest.exceptions import TerminalError
from embedding_ingest.pipeline.local_backend import invoke_in_worker
from embedding_ingest.steps.exceptions import BatchTypeMismatchError, StepInputError, UnknownOperationError
from embedding_ingest.steps.logs import json_handler, logger
from embedding_ingest.steps.registry import HANDLERS, handler_for
from embedding_ingest.stores.records import ItemKind

LAMBDAS = {"embedding-list-pending", "embedding-line-poll", "embedding-word-poll", "embedding-split-chunks",
           "embedding-vector-compact", "embedding-create-chunk-groups", "embedding-mark-batches-complete"}


def test_every_lambda_of_the_reference_has_a_handler():
    assert set(HANDLERS) == LAMBDAS


def test_operation_selects_the_sub_handler(ctx):
    ctx.objects.put_json("chunks/exec-1/chunks.json", [])
    load_event = {"operation": "load_chunks_from_s3", "batch_id": "exec-1",
                  "chunks_s3_key": "chunks/exec-1/chunks.json"}
    loaded = HANDLERS["embedding-split-chunks"](load_event, ctx)
    split = HANDLERS["embedding-split-chunks"]({"batch_id": "exec-1", "poll_results": []}, ctx)

    assert loaded["chunked_data"]["use_s3"] is True
    assert split["chunked_data"]["use_s3"] is False


@pytest.mark.parametrize("name, event", [
    ("embedding-vector-compact", {"batch_id": "exec-1"}),
    ("embedding-vector-compact", {"operation": "compact_everything"}),
    ("embedding-create-chunk-groups", {"operation": "process_chunk"}),
])
def test_unknown_operations_are_terminal_and_list_the_known_ones(ctx, name, event):
    with pytest.raises(UnknownOperationError, match="expected one of") as caught:
        HANDLERS[name](event, ctx)
    assert isinstance(caught.value, TerminalError)


def test_an_unknown_function_name_is_refused():
    with pytest.raises(StepInputError, match="embedding-nope"):
        handler_for("embedding-nope")


def test_logs_are_json_lines_carrying_the_function_and_batch(ctx):
    summary = submit_batch(ctx, make_items(2))
    stream = io.StringIO()
    handler = json_handler(stream)
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        HANDLERS["embedding-line-poll"]({"batch_id": summary.batch_id,
                                         "openai_batch_id": summary.provider_batch_id}, ctx)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)

    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    polled = next(r for r in records if r["message"] == "polled batch")
    assert polled["function"] == "embedding-line-poll"
    assert polled["batch_id"] == summary.batch_id and polled["action"] == "process_results"
    assert [r["message"] for r in records][0] == "step started"
    assert records[-1]["message"] == "step finished" and records[-1]["output_bytes"] > 0


def test_invoke_in_worker_runs_a_step_in_another_process_from_settings_alone(ctx):
    summary = submit_batch(ctx, make_items(2))
    settings_json = ctx.settings.model_dump_json()

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        listed = pool.submit(invoke_in_worker, "embedding-list-pending",
                             {"batch_type": "line", "execution_id": "exec-p"}, settings_json).result()
        polled = pool.submit(invoke_in_worker, "embedding-line-poll",
                             {"batch_index": 0, "pending_batches": listed["pending_batches"]},
                             settings_json).result()

    assert listed["pending_batches"] == [{"batch_id": summary.batch_id,
                                          "openai_batch_id": summary.provider_batch_id}]
    assert polled["action"] == "process_results" and polled["embedding_count"] == 2
    assert ctx.ledger.get_batch(summary.batch_id).provider_status == "completed"


def test_the_line_poll_refuses_a_word_batch(ctx):
    summary = submit_batch(ctx, make_items(1, kind=ItemKind.WORD))
    event = {"batch_id": summary.batch_id, "openai_batch_id": summary.provider_batch_id}

    with pytest.raises(BatchTypeMismatchError, match="WORD_EMBEDDING batch; the line workflow"):
        HANDLERS["embedding-line-poll"](event, ctx)
    assert HANDLERS["embedding-word-poll"](event, ctx)["database"] == "words"
