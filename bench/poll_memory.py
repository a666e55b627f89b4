"""Figure poll_peak_rss_mb (issue 19): peak RSS of one PollBatches invocation ingesting a single
50,000-request x 1536-d output file, as OpenAI writes it (the spec's BatchRequestOutput lines, written by
the local provider's engine). Measured twice: with `encoding_format: "base64"` (what we ask for) and with
floats (OpenAI's default), so the table shows what base64 does to polling: memory, seconds, file size.

The parent builds the workspace: the items in the ledger, one batch claimed and submitted to the local
provider, and finished there (its output file written) before anything is measured. A fresh child
process then runs only the poll step and reports its own VmHWM (see memory.py for why not getrusage)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # run as the child: make `common` (and through it the project) importable
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from common import Figure, make_workspace
from embedding_ingest.receipts.ids import line_item_id
from embedding_ingest.stores.records import BatchStatus, BatchSummary, EmbeddingItem, ItemKind
from embedding_ingest.submission.packing import pack_requests
from peaks import peak_rss_kib

TARGET_MB = 300.0
BATCH_ID = "bench-poll"


def _workspace(work: Path, dimensions: int):
    return make_workspace(work / "ws", dimensions=dimensions, LOCAL_PROVIDER_POLLS_PER_STAGE=0)


def _items(count: int) -> list[EmbeddingItem]:
    """Receipt-like lines: about 20 tokens of text with context, as imported ones carry."""
    return [EmbeddingItem(item_id=line_item_id(f"bench{n // 40:05d}", 1, n % 40), kind=ItemKind.LINE,
                          image_id=f"bench{n // 40:05d}", receipt_number=1, line_id=n % 40,
                          text=f"ITEM {n} RM {n % 97}.{n % 100:02d}",
                          embed_text=f"<EDGE>\nITEM {n} RM {n % 97}.{n % 100:02d}\nTOTAL SST {n % 13}.00",
                          metadata={"image_id": f"bench{n // 40:05d}", "line_id": n % 40}, tokens=20)
            for n in range(count)]


def _dense(texts, dimensions: int | None, model: str | None = None) -> np.ndarray:
    """Unit vectors with every component set, as OpenAI's are (the hashed encoder's vectors of short
    texts are mostly zeros, which print as "0.0" and would make the float file a fifth of a real one).
    The provider engine's Embedder signature (texts, width, model); the model does not change them."""
    rng = np.random.default_rng(len(texts) * 7919 + (dimensions or 0))
    vectors = rng.standard_normal((len(texts), dimensions or 1536)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _prepare(work: Path, count: int, dimensions: int, encoding: str) -> dict:
    ws = _workspace(work, dimensions)
    items = _items(count)
    ws.ledger.add_items(items)
    provider = ws.ctx.provider
    provider.engine.embed = _dense  # the provider writes the spec's lines; only the vectors are OpenAI-like
    packed = pack_requests(items, provider.model, max_items=count, dimensions=dimensions,
                           encoding_format=encoding)
    ws.ledger.claim_batch(BatchSummary(batch_id=BATCH_ID, batch_type=ItemKind.LINE.batch_type,
                                       status=BatchStatus.PENDING, submitted_at=time.time(), item_count=count,
                                       model=provider.model, dimensions=dimensions, tokens=packed.tokens),
                          packed.item_ids)
    submitted = provider.submit(BATCH_ID, packed.jsonl, {})
    ws.ledger.update_batch(BATCH_ID, provider_batch_id=submitted.provider_batch_id)
    done = provider.retrieve(submitted.provider_batch_id)  # finishes at its first poll: not measured
    output = provider.root / "files" / (done.output_file_id or "")
    if done.request_counts.completed != count or not output.is_file():
        raise RuntimeError(f"local provider finished {done.request_counts} without the expected output")
    ws.ledger.close()
    return {"provider_batch_id": submitted.provider_batch_id, "output_bytes": output.stat().st_size}


def _child(work: Path, dimensions: int, provider_batch_id: str) -> None:
    from embedding_ingest.steps.poll import poll

    ws = _workspace(work, dimensions)
    started = time.perf_counter()
    result = poll({"batch_id": BATCH_ID, "openai_batch_id": provider_batch_id}, ws.ctx)
    print(json.dumps({"peak_rss_mb": peak_rss_kib() / 1024, "seconds": time.perf_counter() - started,
                      "embeddings": result["embedding_count"], "released": result["released_count"]}))


def _measure(work: Path, count: int, dimensions: int, encoding: str) -> dict:
    prepared = _prepare(work, count, dimensions, encoding)
    command = [sys.executable, __file__, str(work), str(dimensions), prepared["provider_batch_id"]]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"poll child failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if (report["embeddings"], report["released"]) != (count, 0):
        raise RuntimeError(f"poll ingested {report['embeddings']} and released {report['released']} "
                           f"of {count}")
    return {**report, "output_mb": prepared["output_bytes"] / 1e6}


def run(work: Path, *, count: int, dimensions: int) -> list[Figure]:
    base64 = _measure(work / "base64", count, dimensions, "base64")
    floats = _measure(work / "float", count, dimensions, "float")
    shape = f"one output file of {count:,} x {dimensions}-d"
    return [
        Figure("poll_peak_rss_mb", base64["peak_rss_mb"], "MB", target=TARGET_MB,
               detail=f"PollBatches of {shape}, base64 ({base64['output_mb']:.0f} MB, "
                      f"{base64['seconds']:.1f} s)",
               extra={"poll_seconds_base64": round(base64["seconds"], 2),
                      "poll_output_mb_base64": round(base64["output_mb"], 1)}),
        Figure("poll_peak_rss_mb_float", floats["peak_rss_mb"], "MB",
               detail=f"the same as floats, OpenAI's default ({floats['output_mb']:.0f} MB, "
                      f"{floats['seconds']:.1f} s); for the record",
               extra={"poll_seconds_float": round(floats["seconds"], 2),
                      "poll_output_mb_float": round(floats["output_mb"], 1)}),
    ]


if __name__ == "__main__":
    _child(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
