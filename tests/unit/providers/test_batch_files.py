import json
import math

import pytest

from embedding_ingest.providers.base import MAX_REQUESTS_PER_BATCH
from embedding_ingest.providers.batch_files import (
    LineProblem,
    OutputRecord,
    check_batch_limits,
    encode_request,
    failed_request_line,
    iter_output_records,
    output_line,
    parse_error_file,
    unexecuted_request_line,
)
from embedding_ingest.providers.exceptions import BatchLimitError
from embedding_ingest.stores.records import EmbeddingItem, ItemKind


def item(item_id: str, embed_text: str = "TOTAL 12.50") -> EmbeddingItem:
    return EmbeddingItem(
        item_id=item_id,
        kind=ItemKind.LINE,
        image_id="img-1",
        receipt_number=1,
        line_id=3,
        text=embed_text,
        embed_text=embed_text,
    )


def test_request_line_has_openai_shape_and_ends_with_a_newline():
    line = encode_request(item("IMAGE#img-1#LINE#3", "Café  <left>"), "text-embedding-3-small", None)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "custom_id": "IMAGE#img-1#LINE#3",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "text-embedding-3-small", "input": "Café  <left>"},
    }


def test_request_line_carries_dimensions_only_when_given():
    assert json.loads(encode_request(item("a"), "m", 256))["body"]["dimensions"] == 256
    assert "dimensions" not in json.loads(encode_request(item("a"), "m", None))["body"]


def test_text_with_newlines_stays_on_one_line():
    line = encode_request(item("a", "line one\nline two\r\n"), "m", None)
    assert line.count(b"\n") == 1
    assert json.loads(line)["body"]["input"] == "line one\nline two\r\n"


def good(custom_id: str, embedding: list, request_id: str = "r1") -> bytes:
    return output_line(request_id, custom_id, "m", embedding, tokens=2)


def test_output_lines_parse_back_to_records_with_line_numbers():
    data = good("a", [0.5, -0.5, 1.0]) + b"\n" + good("b", [0, 1, 2])  # a blank line in between
    assert list(iter_output_records(data, dimensions=3)) == [
        OutputRecord(1, "a", [0.5, -0.5, 1.0], tokens=2),  # usage.total_tokens: what is billed
        OutputRecord(3, "b", [0.0, 1.0, 2.0], tokens=2),
    ]


def with_embedding(custom_id: str, embedding_json: str) -> bytes:
    line = good(custom_id, [0.0]).decode().replace("[0.0]", embedding_json)
    return line.encode()


@pytest.mark.parametrize(
    ("bad_line", "custom_id", "reason"),
    [
        (b'{"custom_id": "x", "response": ', None, "malformed JSON"),
        (b'{"response": {"status_code": 200}}', None, "missing custom_id"),
        (with_embedding("wrong-dims", "[1.0, 2.0]"), "wrong-dims", "has 2 dimensions, expected 3"),
        (with_embedding("nan", "[1.0, NaN, 2.0]"), "nan", "non-finite"),
        (with_embedding("inf", "[1.0, Infinity, 2.0]"), "inf", "non-finite"),
        (with_embedding("text", '["1", "2", "3"]'), "text", "not a list of numbers"),
        (with_embedding("bools", "[true, false, true]"), "bools", "not a list of numbers"),
        (with_embedding("not-list", '{"a": 1}'), "not-list", "not a list of numbers"),
        (failed_request_line("r", "rejected", 500, "server exploded"), "rejected", "status_code 500: "),
        (unexecuted_request_line("r", "expired", "batch_expired", "too late"), "expired", "batch_expired"),
        (
            b'{"custom_id": "no-data", "response": {"status_code": 200, "body": {"data": []}}}',
            "no-data",
            "exactly one data[].embedding",
        ),
        (b"[1, 2, 3]", None, "missing custom_id"),
    ],
)
def test_each_bad_line_is_reported_and_the_good_lines_around_it_still_parse(bad_line, custom_id, reason):
    data = good("before", [1, 2, 3]) + bad_line.rstrip(b"\n") + b"\n" + good("after", [4, 5, 6])
    before, problem, after = iter_output_records(data, dimensions=3)
    assert before == OutputRecord(1, "before", [1.0, 2.0, 3.0], tokens=2)
    assert after == OutputRecord(3, "after", [4.0, 5.0, 6.0], tokens=2)
    assert isinstance(problem, LineProblem)
    assert (problem.line_no, problem.custom_id) == (2, custom_id)
    assert reason in problem.reason


def test_output_reading_is_lazy_so_huge_files_stream():
    records = iter_output_records(good("a", [1.0]) * 3, dimensions=1)
    assert next(records) == OutputRecord(1, "a", [1.0], tokens=2)


def test_error_file_gives_a_reason_per_custom_id_for_both_openai_shapes():
    data = (
        failed_request_line("r1", "rejected", 400, "input too long")
        + unexecuted_request_line("r2", "late", "batch_expired", "not executed before the window expired")
        + b"not json\n"
        + b'{"id": "x", "response": null, "error": null}\n'
    )
    reasons = parse_error_file(data)
    assert reasons["rejected"] == "status_code 400: invalid_request_error: input too long"
    assert reasons["late"] == "batch_expired: not executed before the window expired"
    assert reasons["line 3"].startswith("malformed JSON")
    assert reasons["line 4"] == "reported without an error"


def test_an_empty_error_file_reports_nothing():
    assert parse_error_file(b"") == {}
    assert list(iter_output_records(b"\n\n", dimensions=3)) == []


def test_batch_limits_count_requests_and_reject_empty_and_oversized_inputs():
    assert check_batch_limits(encode_request(item("a"), "m", None) * 3) == 3
    with pytest.raises(BatchLimitError, match="no requests"):
        check_batch_limits(b"\n")
    with pytest.raises(BatchLimitError, match="at most 50,000"):
        check_batch_limits(b"{}\n" * (MAX_REQUESTS_PER_BATCH + 1))


def test_output_lines_written_for_the_local_provider_are_finite_json():
    line = json.loads(good("a", [0.25, -0.125]))
    assert line["response"]["body"]["data"][0]["embedding"] == [0.25, -0.125]
    assert line["error"] is None and line["response"]["status_code"] == 200
    assert all(math.isfinite(v) for v in line["response"]["body"]["data"][0]["embedding"])
