import json

from embedding_ingest.providers.request_validation import parse_request_file


def request(custom_id="a", **overrides) -> bytes:
    line = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "m", "input": f"text of {custom_id}"},
    }
    for key, value in overrides.items():
        if key.startswith("body_"):
            line["body"][key[5:]] = value
        else:
            line[key] = value
    return json.dumps(line).encode() + b"\n"


def test_a_valid_file_yields_every_request_in_order():
    requests, errors = parse_request_file(request("a") + b"\n" + request("b", body_dimensions=8))
    assert errors == []
    assert [(r.line_no, r.custom_id, r.text, r.dimensions) for r in requests] == [
        (1, "a", "text of a", None),
        (3, "b", "text of b", 8),
    ]


def test_every_bad_line_is_named_by_its_line_number():
    data = (
        request("ok")
        + b"{broken\n"
        + request(
            "",
        )
        + request("get", method="GET")
        + request("url", url="/v1/chat/completions")
        + request("empty", body_input="")
        + request("list", body_input=["a", "b"])
        + request("dims", body_dimensions=0)
        + request("ok")
    )
    _, errors = parse_request_file(data)
    by_line = {error.line: error for error in errors}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert "not valid JSON" in by_line[2].message
    assert by_line[3].param == "custom_id"
    assert "method must be POST" in by_line[4].message
    assert "does not match the batch endpoint" in by_line[5].message
    assert by_line[6].param == by_line[7].param == "body.input"
    assert by_line[8].param == "body.dimensions"
    assert by_line[9].code == "duplicate_custom_id" and "repeats line 1" in by_line[9].message
    assert by_line[2].as_openai() == {
        "code": "invalid_request",
        "line": 2,
        "message": by_line[2].message,
        "param": None,
    }


def test_one_model_per_batch_and_no_empty_files():
    _, errors = parse_request_file(request("a") + request("b", body_model="other"))
    assert [error.code for error in errors] == ["mixed_models"]
    _, errors = parse_request_file(b"\n \n")
    assert [error.code for error in errors] == ["empty_file"]
