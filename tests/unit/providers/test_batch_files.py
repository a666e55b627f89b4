import base64
import json
import math

import numpy as np
import pytest

from embedding_ingest.providers.base import MAX_REQUESTS_PER_BATCH
from embedding_ingest.providers.batch_files import (
    LineProblem,
    OutputRecord,
    RequestFailure,
    check_batch_limits,
    encode_request,
    failed_request_line,
    iter_output_records,
    output_line,
    parse_error_file,
    split_lines,
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


def test_request_line_has_openai_shape_asks_for_base64_and_ends_with_a_newline():
    line = encode_request(item("IMAGE#img-1#LINE#3", "Café  <left>"), "text-embedding-3-small", 512)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "custom_id": "IMAGE#img-1#LINE#3",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "text-embedding-3-small", "input": "Café  <left>", "dimensions": 512,
                 "encoding_format": "base64"},
    }


def test_request_line_carries_dimensions_only_when_given():
    assert json.loads(encode_request(item("a"), "m", 256))["body"]["dimensions"] == 256
    assert "dimensions" not in json.loads(encode_request(item("a"), "m", None))["body"]


def test_text_with_newlines_stays_on_one_line():
    line = encode_request(item("a", "line one\nline two\r\n"), "m", None)
    assert line.count(b"\n") == 1
    assert json.loads(line)["body"]["input"] == "line one\nline two\r\n"


def good(custom_id: str, embedding: list, request_id: str = "r1", encoding_format="float") -> bytes:
    return output_line(request_id, custom_id, "m", embedding, tokens=2, encoding_format=encoding_format)


def record(line_no, custom_id, values, tokens=2) -> OutputRecord:
    return OutputRecord(line_no, custom_id, np.asarray(values, dtype=np.float32), tokens=tokens)


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_output_lines_parse_back_to_float32_records_with_line_numbers(encoding_format):
    data = (good("a", [0.5, -0.5, 1.0], encoding_format=encoding_format) + b"\n"  # a blank line in between
            + good("b", [0, 1, 2], encoding_format=encoding_format))
    parsed = list(iter_output_records(data, dimensions=3))
    assert parsed == [
        record(1, "a", [0.5, -0.5, 1.0]),  # usage.total_tokens: what is billed
        record(3, "b", [0.0, 1.0, 2.0]),
    ]
    assert all(r.embedding.dtype == np.float32 for r in parsed)


def test_base64_embeddings_are_little_endian_float32_as_openai_sends_them():
    values = np.asarray([-0.0203, 0.0032, 0.5], dtype="<f4")
    line = good("a", [0.0], encoding_format="base64").decode().replace(
        base64.b64encode(np.zeros(1, "<f4").tobytes()).decode(), base64.b64encode(values.tobytes()).decode())
    (parsed,) = iter_output_records(line.encode(), dimensions=3)
    assert parsed.embedding.tolist() == values.tolist()


@pytest.mark.parametrize(("embedding", "reason"), [
    ('"not base64!"', "not valid base64"),
    (json.dumps(base64.b64encode(np.zeros(2, "<f4").tobytes()).decode()), "has 2 dimensions, expected 3"),
    (json.dumps(base64.b64encode(np.asarray([1, np.nan, 2], "<f4").tobytes()).decode()), "non-finite"),
])
def test_a_bad_base64_embedding_is_a_problem_of_its_line(embedding, reason):
    (problem,) = iter_output_records(with_embedding("x", embedding), dimensions=3)
    assert isinstance(problem, LineProblem) and reason in problem.reason and not problem.content


def test_base64_is_accepted_and_refused_as_the_standard_library_does():
    """The SIMD decoder is stricter about padding after the last full quantum than base64.b64decode
    (validate=True); such a value is still read as before, and a stray character still refused."""
    values = np.asarray([0.25, -1.5, 3.0], dtype="<f4")
    padded = base64.b64encode(values.tobytes()).decode() + "="  # 12 bytes: 16 characters, then '='
    (parsed,) = iter_output_records(with_embedding("p", json.dumps(padded)), dimensions=3)
    assert parsed.embedding.tolist() == values.tolist()
    (problem,) = iter_output_records(with_embedding("q", json.dumps("A" + padded[1:-1] + "*")), dimensions=3)
    assert isinstance(problem, LineProblem) and "not valid base64" in problem.reason


def test_lines_split_on_newlines_only_across_chunks_of_any_size():
    # U+2028 and \x1c inside a JSON string are raw bytes here; str.splitlines would cut there.
    data = good("a\u2028b\x1c", [1.0, 2.0, 3.0]) + good("c", [4, 5, 6])
    assert "\u2028".encode() in data
    for size in (1, 7, 100, len(data)):
        chunks = [data[start:start + size] for start in range(0, len(data), size)]
        assert b"".join(split_lines(chunks)) == data.replace(b"\n", b"")
        ids = [r.custom_id for r in iter_output_records(iter(chunks), dimensions=3)]
        assert ids == ["a\u2028b\x1c", "c"]


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
    assert before == record(1, "before", [1.0, 2.0, 3.0])
    assert after == record(3, "after", [4.0, 5.0, 6.0])
    assert isinstance(problem, LineProblem)
    assert (problem.line_no, problem.custom_id) == (2, custom_id)
    assert reason in problem.reason


def test_output_reading_is_lazy_so_huge_files_stream():
    records = iter_output_records(good("a", [1.0]) * 3, dimensions=1)
    assert next(records) == record(1, "a", [1.0])


def test_error_file_gives_a_reason_per_custom_id_for_both_openai_shapes():
    data = (
        failed_request_line("r1", "rejected", 400, "input too long")
        + unexecuted_request_line("r2", "late", "batch_expired", "not executed before the window expired")
        + b"not json\n"
        + b'{"id": "x", "response": null, "error": null}\n'
    )
    reasons = parse_error_file(data)
    assert reasons["rejected"] == RequestFailure("status_code 400: invalid_request_error: input too long",
                                                 content=True)
    assert reasons["late"] == RequestFailure("batch_expired: not executed before the window expired",
                                             content=False)
    assert reasons["line 3"].reason.startswith("malformed JSON")
    assert reasons["line 4"] == RequestFailure("reported without an error", content=False)


@pytest.mark.parametrize(("status", "content"), [(400, True), (413, True), (408, False), (409, False),
                                                 (429, False), (500, False), (503, False)])
def test_only_a_request_refused_for_its_content_is_blamed_on_it(status, content):
    failures = parse_error_file(failed_request_line("r", "x", status, "no"))
    assert failures["x"].content is content


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
    line = json.loads(good("a", [0.25, -0.125]))  # float: OpenAI's default format
    assert line["response"]["body"]["data"][0]["embedding"] == [0.25, -0.125]
    assert line["error"] is None and line["response"]["status_code"] == 200
    assert all(math.isfinite(v) for v in line["response"]["body"]["data"][0]["embedding"])
