"""Chroma's result shapes, merged across the segments of a version. Segments hold disjoint ids and
every one is a cosine collection, so distances from different segments are on one scale and the `n`
nearest of the union are the `n` nearest of the per-segment `n` nearest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from chromadb.api.types import GetResult, QueryResult

QUERY_FIELDS = ("documents", "metadatas", "embeddings", "distances", "uris", "data")
DEFAULT_QUERY_INCLUDE = ("metadatas", "documents", "distances")  # Chroma's own default
DEFAULT_GET_INCLUDE = ("metadatas", "documents")

Hits = list[list[tuple[float, str]]]  # one segment's: per query vector, (distance, id), nearest first
Fields = dict[tuple[int, str], tuple[str | None, dict[str, Any] | None]]  # (segment, id) -> doc, metadata


def merge_query(parts: Sequence[dict[str, Any]], queries: int, n_results: int,
                include: Sequence[str]) -> QueryResult:
    """Merge per-segment query results (each asked for distances) into one QueryResult: per query,
    the `n_results` smallest distances, ties broken by id so the order is deterministic."""
    merged: dict[str, Any] = {"ids": [], "included": list(include)}
    for name in QUERY_FIELDS:
        merged[name] = [] if name in include else None
    for q in range(queries):
        candidates = [(distance, item_id, p, row)
                      for p, part in enumerate(parts)
                      for row, (item_id, distance) in enumerate(zip(part["ids"][q], part["distances"][q],
                                                                    strict=True))]
        chosen = sorted(candidates)[:n_results]
        merged["ids"].append([item_id for _, item_id, _, _ in chosen])
        for name in include:
            if name == "embeddings":
                rows = [np.asarray(parts[p]["embeddings"][q][row], dtype=np.float32)
                        for _, _, p, row in chosen]
                merged[name].append(np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32))
            elif name in QUERY_FIELDS:
                merged[name].append([_field(parts[p], name, q, row) for _, _, p, row in chosen])
    return merged  # type: ignore[return-value]


def merge_hits(found: Sequence[Hits], queries: int, n: int) -> list[list[tuple[float, str, int]]]:
    """The `n` nearest over several segments' hits (`found`, one Hits per segment, disjoint ids) for
    each of `queries` query vectors: (distance, id, segment number), nearest first, ties by id."""
    merged: list[list[tuple[float, str, int]]] = [[] for _ in range(queries)]
    for number, hits in enumerate(found):
        for q, row in enumerate(hits):
            merged[q].extend((distance, item_id, number) for distance, item_id in row)
    for row in merged:
        row.sort()
        del row[n:]
    return merged


def query_result(hits: Sequence[Sequence[tuple[float, str, int]]], fields: Fields,
                 include: Sequence[str]) -> QueryResult:
    """A QueryResult from per-query (distance, id, segment) hits, nearest first, and `fields`: (segment,
    id) -> (document, metadata) of every hit when documents or metadatas are included (embeddings are
    not: such queries go through merge_query)."""
    result: dict[str, Any] = {"ids": [[item_id for _, item_id, _ in row] for row in hits],
                              "included": list(include)}
    for name in QUERY_FIELDS:
        result[name] = None
    if "distances" in include:
        result["distances"] = [[distance for distance, _, _ in row] for row in hits]
    if "documents" in include:
        result["documents"] = [[fields[segment, item_id][0] for _, item_id, segment in row] for row in hits]
    if "metadatas" in include:
        result["metadatas"] = [[fields[segment, item_id][1] for _, item_id, segment in row] for row in hits]
    return result  # type: ignore[return-value]


def _field(part: dict[str, Any], name: str, query: int, row: int) -> Any:
    values = part.get(name)
    return None if values is None else values[query][row]


def merge_get(parts: Sequence[dict[str, Any]], include: Sequence[str], offset: int,
              limit: int | None) -> GetResult:
    """Concatenate per-segment get results (disjoint ids), then apply offset and limit."""
    stop = None if limit is None else offset + limit
    merged: dict[str, Any] = {"ids": [i for part in parts for i in part["ids"]][offset:stop],
                              "included": list(include)}
    for name in ("documents", "metadatas", "embeddings", "uris", "data"):
        if name not in include:
            merged[name] = None
        elif name == "embeddings":
            rows = [np.asarray(e, dtype=np.float32) for part in parts
                    for e in (part["embeddings"] if part["embeddings"] is not None else [])]
            merged[name] = np.stack(rows[offset:stop]) if rows[offset:stop] else np.zeros((0, 0), np.float32)
        else:
            merged[name] = [v for part in parts for v in (part.get(name) or [])][offset:stop]
    # get() over several segments: rows in segment order, each segment's rows in Chroma's order
    return merged  # type: ignore[return-value]
