"""One execution that fails in MergeChunkGroupsInParallel, as the reference's Example 3 ("Execution
fails at MergeChunkGroupsInParallel ... Verify S3 files"): run in the workspace of
EMBEDDING_INGEST_HOME with the real steps, except that once CreateChunkGroups has written the groups,
chunk 0's intermediate snapshot loses its manifest (as if deleted from the bucket), so merging group 0
fails with ObjectNotFoundError. The run needs more than 40 deltas (grouping starts past 4 chunks).

Usage: python failing_merge_run.py KIND NAME - prints the DescribeExecution JSON; exits 0 when the run
failed where it should, 1 otherwise."""

from __future__ import annotations

import json
import sys
from typing import Any

from embedding_ingest.backends import build_object_store
from embedding_ingest.config import load_settings
from embedding_ingest.pipeline.run import run_execution
from embedding_ingest.steps.keys import chunk_intermediate_prefix
from embedding_ingest.stores.records import ItemKind


def main(kind: str, name: str) -> int:
    settings = load_settings()
    objects = build_object_store(settings)

    def lose_a_manifest(stage: str, outcome: str, _result: Any) -> None:
        if stage == "create chunk groups" and outcome == "succeeded":
            objects.delete(chunk_intermediate_prefix(name, 0) + "manifest.json")

    described = run_execution(ItemKind(kind), settings, name=name, observer=lose_a_manifest)
    print(json.dumps(described, default=str))
    failed_there = described["status"] == "FAILED" and described["summary"].get("failed_state") in (
        "MergeChunkGroupsInParallel", "MergeWordChunkGroupsInParallel")
    return 0 if failed_there else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
