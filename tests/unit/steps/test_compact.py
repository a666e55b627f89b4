from __future__ import annotations

import pytest
from steps_world import polled, snapshot_records

from embedding_ingest.snapshots import read_manifest
from embedding_ingest.steps.chunks import split_chunks
from embedding_ingest.steps.compact import merge_chunk_group, process_chunk
from embedding_ingest.steps.exceptions import (
    EmbeddingCountMismatchError,
    OffloadedIndexError,
    StepInputError,
)
from embedding_ingest.steps.groups import create_chunk_groups
from embedding_ingest.stores.exceptions import CorruptObjectError


def delta_ref(poll_result: dict) -> dict:
    return {key: poll_result[key] for key in ("batch_id", "delta_key", "embedding_count", "database",
                                              "collection")}


@pytest.fixture
def three_deltas(ctx):
    return [polled(ctx, count) for count in (2, 3, 4)]


def test_a_chunk_merges_all_its_deltas_and_counts_them(ctx, tmp_path, three_deltas):
    event = {"chunk_index": 0, "batch_id": "exec-1", "operation": "process_chunk",
             "delta_results": [delta_ref(p) for _, _, p in three_deltas],
             "chunks_s3_key": None, "chunks_s3_bucket": None}

    result = process_chunk(event, ctx)

    assert result == {"intermediate_key": "intermediate/exec-1/chunk-0/", "total_embeddings": 9}
    merged = snapshot_records(ctx, result["intermediate_key"], tmp_path)
    assert set(merged) == {i.item_id for items, _, _ in three_deltas for i in items}


def test_processing_a_chunk_twice_gives_the_same_intermediate(ctx, three_deltas):
    refs = [delta_ref(p) for _, _, p in three_deltas]
    event = {"chunk_index": 3, "batch_id": "exec-1", "delta_results": refs}

    first = process_chunk(event, ctx)
    manifest = read_manifest(ctx.objects, first["intermediate_key"])
    second = process_chunk(event, ctx)

    assert second == first
    assert read_manifest(ctx.objects, first["intermediate_key"]) == manifest


def test_a_chunk_is_read_from_chunks_json_when_its_deltas_are_null(ctx, tmp_path, three_deltas):
    fillers = [dict(p, batch_id=f"w{n}", delta_key=f"lines/delta/lines/receipt_lines/w{n}/")
               for n, (_, _, p) in enumerate(three_deltas * 400)]
    real = [p for _, _, p in three_deltas]
    split = split_chunks({"batch_id": "exec-s3", "poll_results": fillers + real}, ctx)["chunked_data"]
    assert split["use_s3"] is True
    last = split["chunks"][-1]

    result = process_chunk({**last, "delta_results": None}, ctx)

    assert result["total_embeddings"] == 9
    assert result["intermediate_key"] == f"intermediate/exec-s3/chunk-{last['chunk_index']}/"


def test_chunk_index_outside_chunks_json_is_named(ctx, three_deltas):
    ctx.objects.put_json("chunks/exec-1/chunks.json", [
        {"chunk_index": 0, "batch_id": "exec-1", "delta_results": [delta_ref(three_deltas[0][2])]}])
    with pytest.raises(OffloadedIndexError, match=r"chunks/exec-1/chunks.json.*index 4"):
        process_chunk({"chunk_index": 4, "batch_id": "exec-1", "delta_results": None,
                       "chunks_s3_key": "chunks/exec-1/chunks.json"}, ctx)
    with pytest.raises(StepInputError, match="neither delta_results nor chunks_s3_key"):
        process_chunk({"chunk_index": 0, "batch_id": "exec-1", "delta_results": None,
                       "chunks_s3_key": None}, ctx)


def test_a_delta_holding_fewer_embeddings_than_reported_stops_the_merge(ctx, three_deltas):
    refs = [delta_ref(p) for _, _, p in three_deltas]
    refs[1]["embedding_count"] += 1

    with pytest.raises(EmbeddingCountMismatchError, match=f"{refs[1]['delta_key']}.*expected 4.*found 3"):
        process_chunk({"chunk_index": 0, "batch_id": "exec-1", "delta_results": refs}, ctx)
    assert not ctx.objects.exists("intermediate/exec-1/chunk-0/manifest.json")


def test_a_corrupt_delta_archive_is_named(ctx, three_deltas):
    refs = [delta_ref(p) for _, _, p in three_deltas]
    archive = read_manifest(ctx.objects, refs[2]["delta_key"]).archive_key
    ctx.objects.put_bytes(archive, b"not a tar archive")

    with pytest.raises(CorruptObjectError, match=archive):
        process_chunk({"chunk_index": 0, "batch_id": "exec-1", "delta_results": refs}, ctx)


def test_a_group_of_more_than_ten_merges_every_member(ctx, tmp_path):
    deltas = [polled(ctx, 1) for _ in range(12)]
    refs = [{"intermediate_key": p["delta_key"], "total_embeddings": 1} for _, _, p in deltas]
    groups = create_chunk_groups({"batch_id": "exec-g", "chunk_results": refs, "group_size": 12}, ctx)

    result = merge_chunk_group({"operation": "merge_chunk_group", "batch_id": "exec-g", "group_index": 0,
                                "chunk_group": None,
                                "groups_s3_key": groups["chunk_groups"]["groups_s3_key"]}, ctx)

    assert result == {"intermediate_key": "intermediate/exec-g-group-0/merged/", "total_embeddings": 12}
    merged = snapshot_records(ctx, result["intermediate_key"], tmp_path)
    assert set(merged) == {items[0].item_id for items, _, _ in deltas}


def test_an_inline_group_is_merged_and_a_rerun_is_harmless(ctx, three_deltas):
    group = [{"intermediate_key": p["delta_key"], "total_embeddings": p["embedding_count"]}
             for _, _, p in three_deltas]
    event = {"batch_id": "exec-1", "group_index": 2, "chunk_group": group, "groups_s3_key": None}

    assert merge_chunk_group(event, ctx) == merge_chunk_group(event, ctx) == {
        "intermediate_key": "intermediate/exec-1-group-2/merged/", "total_embeddings": 9}


def test_a_group_needs_members_from_somewhere(ctx):
    with pytest.raises(StepInputError, match="neither chunk_group nor groups_s3_key"):
        merge_chunk_group({"batch_id": "exec-1", "group_index": 0, "chunk_group": None,
                           "groups_s3_key": None}, ctx)


def test_two_copies_of_one_id_in_a_chunk_resolve_to_the_newer_submission(ctx, tmp_path):
    """An item re-embedded while its older batch was still in flight: both deltas reach one merge.
    The newer submission's record wins, every entry is accounted for, and no retry is needed."""
    import numpy as np

    from embedding_ingest.snapshots import RecordPage, write_snapshot
    from embedding_ingest.snapshots.revisions import revision_of

    def delta(name: str, submitted_at: float, text: str) -> dict:
        prefix = f"lines/delta/lines/receipt_lines/{name}/"
        page = RecordPage(ids=["IMAGE#a#RECEIPT#00001#LINE#00000"], embeddings=np.ones((1, 8), np.float32),
                          metadatas=[{"revision": revision_of(submitted_at, name)}], documents=[text])
        write_snapshot(ctx.objects, prefix, [page], collection="lines", dimensions=8, model="m",
                       profile="flat")
        return {"batch_id": name, "delta_key": prefix, "embedding_count": 1, "database": "lines",
                "collection": "lines"}

    newer, older = delta("b-new", 2000.0, "TOTAL 12.00"), delta("b-old", 1000.0, "T0TAL 12.00")
    result = process_chunk({"chunk_index": 0, "batch_id": "exec-dup", "delta_results": [newer, older]}, ctx)

    assert result["total_embeddings"] == 1
    manifest = read_manifest(ctx.objects, result["intermediate_key"])
    assert (manifest.count, manifest.superseded) == (1, 1)
    (record,) = snapshot_records(ctx, result["intermediate_key"], tmp_path).values()
    assert record[2] == "TOTAL 12.00"
