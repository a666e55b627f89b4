from __future__ import annotations

import pytest
from steps_world import filler_poll_results

from embedding_ingest.metrics import POLL_FAILURES, metrics_sink
from embedding_ingest.steps.chunks import load_chunks_from_s3, split_chunks
from embedding_ingest.steps.contracts import INLINE_PAYLOAD_LIMIT, POLL_RESULTS_INLINE_LIMIT
from embedding_ingest.steps.exceptions import StepInputError
from embedding_ingest.steps.groups import create_chunk_groups, load_groups_from_s3
from embedding_ingest.stores.exceptions import CorruptObjectError


def delta_results(count: int, *, start: int = 0) -> list[dict]:
    return [{"batch_id": f"b-{n:05d}", "openai_batch_id": f"batch_{n:05d}", "batch_status": "completed",
             "action": "process_results", "results_count": 3, "delta_id": f"b-{n:05d}",
             "delta_key": f"lines/delta/lines/receipt_lines/b-{n:05d}/", "embedding_count": 3,
             "storage": "s3_delta", "collection": "lines", "database": "lines"}
            for n in range(start, start + count)]


def chunk_refs(count: int) -> list[dict]:
    return [{"intermediate_key": f"intermediate/exec/chunk-{n}/", "total_embeddings": 7}
            for n in range(count)]


# -- split_chunks / load_chunks_from_s3 ---------------------------------------------------------
def test_only_deltas_are_chunked_ten_at_a_time_each_exactly_once(ctx):
    caught = {"batch_index": 4, "action": "poll_failed", "error": {"Error": "ProviderTransientError"}}
    nothing = dict(delta_results(1, start=900)[0], action="nothing_to_ingest", delta_key=None, delta_id=None)
    polls = [*delta_results(12), *filler_poll_results(3), caught, nothing, *delta_results(11, start=12)]

    counted = []
    with metrics_sink(lambda name, value, workflow: counted.append((name, value))):
        result = split_chunks({"batch_id": "exec-1", "poll_results": polls}, ctx)

    assert counted == [(POLL_FAILURES, 1.0)]  # caught so the rest proceeds, but counted (alarmed)
    data = result["chunked_data"]
    assert (data["total_chunks"], data["use_s3"], data["chunks_s3_key"]) == (3, False, None)
    assert [c["chunk_index"] for c in data["chunks"]] == [0, 1, 2]
    assert [len(c["delta_results"]) for c in data["chunks"]] == [10, 10, 3]
    keys = [d["delta_key"] for c in data["chunks"] for d in c["delta_results"]]
    assert keys == [p["delta_key"] for p in delta_results(23)]
    assert all(c["operation"] == "process_chunk" and c["batch_id"] == "exec-1" for c in data["chunks"])


def test_null_poll_results_make_no_chunks(ctx):
    result = split_chunks({"batch_id": "exec-1", "poll_results": None}, ctx)
    assert result["chunked_data"]["total_chunks"] == 0 and result["chunked_data"]["chunks"] == []


def test_chunks_over_150_kb_go_to_s3_and_load_gives_their_indices(ctx):
    polls = delta_results(1200)

    result = split_chunks({"batch_id": "exec-big", "poll_results": polls}, ctx)["chunked_data"]

    assert result["use_s3"] is True and result["total_chunks"] == 120
    assert result["chunks_s3_key"] == "chunks/exec-big/chunks.json"
    assert result["chunks_s3_bucket"] == ctx.objects.location
    assert len(str(result)) < INLINE_PAYLOAD_LIMIT
    stored = ctx.objects.get_json(result["chunks_s3_key"])
    assert [d["delta_key"] for c in stored for d in c["delta_results"]] == [p["delta_key"] for p in polls]
    assert all(c["delta_results"] is None for c in result["chunks"])

    loaded = load_chunks_from_s3({"operation": "load_chunks_from_s3", "batch_id": "exec-big",
                                  "chunks_s3_key": result["chunks_s3_key"],
                                  "chunks_s3_bucket": result["chunks_s3_bucket"]}, ctx)["chunked_data"]

    assert loaded == result
    assert [c["chunk_index"] for c in loaded["chunks"]] == list(range(120))


def test_a_bad_poll_result_is_named(ctx):
    broken = delta_results(2)
    del broken[1]["openai_batch_id"]
    with pytest.raises(StepInputError, match=r"poll_results\.1\.process_results\.openai_batch_id"):
        split_chunks({"batch_id": "exec-1", "poll_results": broken}, ctx)


def test_a_corrupt_chunks_file_is_named(ctx):
    ctx.objects.put_bytes("chunks/exec-1/chunks.json", b'[{"chunk_index": "zero"}]')
    with pytest.raises(CorruptObjectError, match="chunks/exec-1/chunks.json"):
        load_chunks_from_s3({"batch_id": "exec-1", "chunks_s3_key": "chunks/exec-1/chunks.json"}, ctx)


# -- create_chunk_groups / load_groups_from_s3 --------------------------------------------------
def test_groups_always_go_to_s3_and_small_poll_results_stay_inline(ctx):
    polls = delta_results(3)

    result = create_chunk_groups({"batch_id": "exec-1", "chunk_results": chunk_refs(23), "group_size": None,
                                  "poll_results": polls}, ctx)["chunk_groups"]

    assert result["use_s3"] is True and result["total_groups"] == 3
    assert result["groups_s3_key"] == "chunk_groups/exec-1/groups.json"
    groups = ctx.objects.get_json(result["groups_s3_key"])
    assert [len(g) for g in groups] == [10, 10, 3]
    grouped = [r["intermediate_key"] for g in groups for r in g]
    assert grouped == [r["intermediate_key"] for r in chunk_refs(23)]
    assert result["poll_results_s3_key"] is None
    assert [p["batch_id"] for p in result["poll_results"]] == [p["batch_id"] for p in polls]


def test_group_size_from_the_event_is_honoured(ctx):
    result = create_chunk_groups({"batch_id": "exec-1", "chunk_results": chunk_refs(25), "group_size": 12,
                                  "poll_results": None}, ctx)["chunk_groups"]
    assert [len(g) for g in ctx.objects.get_json(result["groups_s3_key"])] == [12, 12, 1]


def test_poll_results_over_100_kb_go_to_s3_and_load_passes_the_keys_on(ctx):
    polls = [*delta_results(5), *filler_poll_results(400)]

    result = create_chunk_groups({"batch_id": "exec-1", "chunk_results": chunk_refs(11),
                                  "poll_results": polls}, ctx)["chunk_groups"]

    assert result["poll_results"] is None
    assert result["poll_results_s3_key"] == "chunk_groups/exec-1/poll_results.json"
    stored = ctx.objects.get_json(result["poll_results_s3_key"])
    assert len(str(stored).encode()) > POLL_RESULTS_INLINE_LIMIT
    assert [p["batch_id"] for p in stored] == [p["batch_id"] for p in polls]

    event = {"operation": "load_groups_from_s3", "batch_id": "exec-1",
             "groups_s3_key": result["groups_s3_key"], "groups_s3_bucket": result["groups_s3_bucket"],
             "poll_results_s3_key": result["poll_results_s3_key"],
             "poll_results_s3_bucket": result["poll_results_s3_bucket"]}
    loaded = load_groups_from_s3(event, ctx)["chunk_groups"]

    assert loaded["total_groups"] == 2
    assert [(g["group_index"], g["chunk_group"]) for g in loaded["groups"]] == [(0, None), (1, None)]
    assert all(g["groups_s3_key"] == result["groups_s3_key"] for g in loaded["groups"])
    assert loaded["poll_results_s3_key"] == result["poll_results_s3_key"] and loaded["poll_results"] is None


def test_loading_groups_never_drops_inline_poll_results(ctx):
    polls = delta_results(2)
    created = create_chunk_groups({"batch_id": "exec-1", "chunk_results": chunk_refs(12),
                                   "poll_results": polls}, ctx)["chunk_groups"]

    loaded = load_groups_from_s3({"batch_id": "exec-1", "groups_s3_key": created["groups_s3_key"],
                                  "poll_results": created["poll_results"]}, ctx)["chunk_groups"]

    assert loaded["poll_results"] == created["poll_results"]


def test_chunk_results_are_required(ctx):
    with pytest.raises(StepInputError, match="chunk_results"):
        create_chunk_groups({"batch_id": "exec-1", "chunk_results": None}, ctx)
