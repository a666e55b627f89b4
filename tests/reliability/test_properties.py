"""Properties of the pure parts (hypothesis): chunking, grouping and offload decisions; item id
round-trips; visual row grouping of receipt lines."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pipeline import Workspace, make_workspace

from asl_local.limits import MAX_PAYLOAD_BYTES
from embedding_ingest.receipts.context import group_rows, shares_row
from embedding_ingest.receipts.exceptions import InvalidItemIdError
from embedding_ingest.receipts.ids import ItemRef, line_item_id, parse_item_id, word_item_id
from embedding_ingest.receipts.models import PixelBox
from embedding_ingest.steps.chunks import load_chunks_from_s3, split_chunks
from embedding_ingest.steps.contracts import (
    CHUNK_SIZE,
    GROUP_SIZE,
    POLL_RESULTS_INLINE_LIMIT,
    PROBLEM_TEXT_LIMIT,
)
from embedding_ingest.steps.groups import create_chunk_groups, load_groups_from_s3
from embedding_ingest.steps.offload import POLL_OUTCOMES, json_size

EXAMPLES = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = make_workspace(tmp_path_factory.mktemp("properties"))
    yield workspace
    workspace.ledger.close()


def poll_outcomes(deltas: int, others: int, rng: random.Random) -> list[dict]:
    """`deltas` results with a delta, plus `others` that have none (empty, failed, waiting, caught)."""
    outcomes: list[dict] = []
    for i in range(deltas):
        batch_id = f"{i:08d}-0000-5000-8000-{rng.getrandbits(48):012x}"
        outcomes.append({"batch_id": batch_id, "openai_batch_id": f"batch_{i}", "batch_status": "completed",
                         "action": "process_results", "results_count": 3, "delta_id": batch_id,
                         "delta_key": f"lines/delta/lines/receipt_lines/{batch_id}/",
                         "embedding_count": rng.randint(1, 1000), "storage": "s3_delta",
                         "collection": "lines", "database": "lines", "problem_count": 9,
                         "first_problem": "p" * PROBLEM_TEXT_LIMIT})  # worst case: a problem shown
    for i in range(others):
        action = rng.choice(["nothing_to_ingest", "batch_failed", "wait", "poll_failed"])
        outcomes.append({"batch_index": i, "action": "poll_failed", "error": {"Error": "X", "Cause": "y"}}
                        if action == "poll_failed" else
                        {"batch_id": f"other-{i}", "openai_batch_id": f"batch_o{i}", "batch_status": "x",
                         "action": action, "collection": "lines", "database": "lines"})
    rng.shuffle(outcomes)
    return outcomes


@EXAMPLES
@given(deltas=st.integers(0, 1200), others=st.integers(0, 40), rng=st.randoms(use_true_random=False))
@example(deltas=1200, others=3, rng=random.Random(0))  # surely past the inline limit: chunks.json
def test_every_delta_lands_in_exactly_one_chunk_and_state_stays_under_the_limit(
        ws: Workspace, deltas: int, others: int, rng: random.Random) -> None:
    outcomes = poll_outcomes(deltas, others, rng)
    expected = [o["delta_key"] for o in outcomes if o.get("delta_key")]
    result = split_chunks({"batch_id": "exec-1", "poll_results": outcomes}, ws.ctx)
    assert json_size(result) < MAX_PAYLOAD_BYTES
    data = result["chunked_data"]
    if data["use_s3"]:
        chunks = ws.objects.get_json(data["chunks_s3_key"])
        loaded = load_chunks_from_s3({"batch_id": "exec-1", "chunks_s3_key": data["chunks_s3_key"]}, ws.ctx)
        assert json_size(loaded) < MAX_PAYLOAD_BYTES
        assert [c["chunk_index"] for c in loaded["chunked_data"]["chunks"]] == list(range(len(chunks)))
    else:
        chunks = data["chunks"]
    assert data["total_chunks"] == len(chunks) == -(-len(expected) // CHUNK_SIZE)
    assert [c["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert all(1 <= len(c["delta_results"]) <= CHUNK_SIZE for c in chunks)
    assert [d["delta_key"] for c in chunks for d in c["delta_results"]] == expected  # once each, in order


@EXAMPLES
@given(chunks=st.integers(1, 400), group_size=st.one_of(st.none(), st.integers(1, 25)),
       polls=st.integers(0, 400), rng=st.randoms(use_true_random=False))
@example(chunks=400, group_size=None, polls=400, rng=random.Random(0))  # poll_results.json
def test_every_chunk_lands_in_exactly_one_group_and_poll_results_offload_at_their_limit(
        ws: Workspace, chunks: int, group_size: int | None, polls: int, rng: random.Random) -> None:
    refs = [{"intermediate_key": f"intermediate/exec-1/chunk-{i}/", "total_embeddings": rng.randint(0, 99)}
            for i in range(chunks)]
    outcomes = poll_outcomes(polls, 0, rng)
    event = {"batch_id": "exec-1", "chunk_results": refs, "group_size": group_size, "poll_results": outcomes}
    result = create_chunk_groups(event, ws.ctx)
    assert json_size(result) < MAX_PAYLOAD_BYTES
    groups_info = result["chunk_groups"]
    groups = ws.objects.get_json(groups_info["groups_s3_key"])
    size = group_size or GROUP_SIZE
    assert groups_info["total_groups"] == len(groups) == -(-chunks // size)
    assert all(1 <= len(group) <= size for group in groups)
    assert [ref for group in groups for ref in group] == refs  # once each, in order, counts kept

    # the limit applies to poll_results as they travel in state: the contract's form, defaults included
    offloaded = json_size(POLL_OUTCOMES.dump_python(POLL_OUTCOMES.validate_python(outcomes), mode="json")
                          ) > POLL_RESULTS_INLINE_LIMIT
    assert (groups_info["poll_results_s3_key"] is not None) == offloaded
    carried = (ws.objects.get_json(groups_info["poll_results_s3_key"]) if offloaded
               else groups_info["poll_results"])
    assert [o["delta_key"] for o in carried] == [o["delta_key"] for o in outcomes]

    loaded = load_groups_from_s3({**groups_info, "operation": "load_groups_from_s3"}, ws.ctx)
    assert json_size(loaded) < MAX_PAYLOAD_BYTES
    assert [g["group_index"] for g in loaded["chunk_groups"]["groups"]] == list(range(len(groups)))


image_ids = st.text(st.characters(blacklist_characters="#", blacklist_categories=["Cs"]), min_size=1,
                    max_size=24).filter(lambda s: s.strip() != "")
numbers = st.integers(0, 99_999)


@settings(max_examples=100, deadline=None)
@given(image=image_ids, receipt=numbers, line=numbers, word=st.one_of(st.none(), numbers))
def test_item_ids_round_trip(image: str, receipt: int, line: int, word: int | None) -> None:
    item_id = line_item_id(image, receipt, line) if word is None else word_item_id(image, receipt, line, word)
    ref = parse_item_id(item_id)
    assert ref == ItemRef(image, receipt, line, word)
    assert ref.item_id == item_id


@settings(max_examples=100, deadline=None)
@given(image=image_ids, a=st.tuples(numbers, numbers, st.one_of(st.none(), numbers)),
       b=st.tuples(numbers, numbers, st.one_of(st.none(), numbers)))
def test_item_ids_of_one_image_sort_in_receipt_line_word_order(image: str, a, b) -> None:
    def item_id(parts) -> str:
        receipt, line, word = parts
        if word is None:
            return line_item_id(image, receipt, line)
        return word_item_id(image, receipt, line, word)

    def order(parts) -> tuple[int, int, int]:
        receipt, line, word = parts
        return (receipt, line, -1 if word is None else word)  # a line sorts before its words

    assert (item_id(a) < item_id(b)) == (order(a) < order(b))


# Ways to damage a valid id, each of which must make it invalid ("none" leaves it valid).
ID_DAMAGE = {
    "none": lambda item_id: item_id,
    "drop_last_digit": lambda item_id: item_id[:-1],
    "letter_for_last_digit": lambda item_id: item_id[:-1] + "x",
    "trailing_space": lambda item_id: item_id + " ",
    "lowercase_prefix": lambda item_id: "image" + item_id[len("IMAGE"):],
    "empty_image": lambda item_id: item_id.replace("#", "##", 1),
}


@settings(max_examples=100, deadline=None)
@given(image=image_ids, receipt=numbers, line=numbers, word=st.one_of(st.none(), numbers),
       damage=st.sampled_from(sorted(ID_DAMAGE)))
@example(image="sroie-000", receipt=1, line=8, word=None, damage="none")
@example(image="sroie-000", receipt=1, line=8, word=2, damage="letter_for_last_digit")
def test_a_valid_id_parses_and_a_damaged_one_is_refused_by_name(
        image: str, receipt: int, line: int, word: int | None, damage: str) -> None:
    with pytest.raises(InvalidItemIdError, match="image_id"):
        line_item_id(image + "#x", 1, 1)
    valid = line_item_id(image, receipt, line) if word is None else word_item_id(image, receipt, line, word)
    text = ID_DAMAGE[damage](valid)
    if damage == "none":
        assert parse_item_id(text).item_id == text
    else:
        with pytest.raises(InvalidItemIdError) as refused:
            parse_item_id(text)
        assert (refused.value.component, refused.value.value) == ("item_id", text)  # names what and which


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40))
@example(text="IMAGE#a#RECEIPT#00001#LINE#00002#WORD#00003")  # the parsing branch
@example(text="IMAGE#a#RECEIPT#1#LINE#2")  # the refusing branch
def test_any_text_either_parses_back_to_itself_or_is_refused_by_name(text: str) -> None:
    try:
        ref = parse_item_id(text)
    except InvalidItemIdError as exc:
        assert "item_id" in str(exc)
    else:
        assert ref.item_id == text


boxes = st.builds(lambda x, y, w, h: PixelBox(x0=x, y0=y, x1=x + w, y1=y + h),
                  st.integers(0, 500), st.integers(0, 2000), st.integers(1, 300), st.integers(1, 80))


@settings(max_examples=100, deadline=None)
@given(placed=st.lists(boxes, max_size=40), rng=st.randoms(use_true_random=False))
def test_rows_partition_the_lines_top_to_bottom_each_within_its_seeds_reach(
        placed: list[PixelBox], rng: random.Random) -> None:
    lines = list(enumerate(placed))  # (line_id, box)
    rows = group_rows(lines, box=lambda line: line[1], item_id=lambda line: line[0])
    ids = [line_id for row in rows for line_id, _ in row]
    assert sorted(ids) == list(range(len(placed)))  # every line in exactly one row

    shuffled = lines[:]
    rng.shuffle(shuffled)
    assert group_rows(shuffled, box=lambda line: line[1], item_id=lambda line: line[0]) == rows

    seeds = []
    for row in rows:
        seed = min(row, key=lambda line: (line[1].center_y, line[1].x0, line[0]))
        seeds.append(seed)
        assert all(shares_row(seed[1], other) for _, other in row)
        assert row == sorted(row, key=lambda line: (line[1].x0, line[1].x1, line[0]))  # left to right
    centres = [seed[1].center_y for seed in seeds]
    assert centres == sorted(centres)  # rows come out top to bottom
    for earlier, later in zip(seeds, seeds[1:], strict=False):
        assert not shares_row(earlier[1], later[1])  # a new row starts only out of the seed's reach

