"""The schedule's one line per round says what each workflow did, deletions included."""

from __future__ import annotations

from embedding_ingest.pipeline.schedule import describe_round


def test_a_round_that_deleted_embeddings_says_so():
    runs = {"line": [{"status": "SUCCEEDED", "summary": {"embeddings_published": 0, "embeddings_deleted": 76,
                                                         "batches_still_active": 0}}],
            "word": []}

    nothing = {"items": 0, "batches": 0, "refused": 0, "waiting_for_budget": 0}
    line = describe_round(1, {"line": nothing}, runs)

    assert line == ("round 1: submitted nothing; line: 1 execution (1 SUCCEEDED), 0 embeddings published, "
                    "76 deleted; word: idle")
