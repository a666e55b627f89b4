"""Token counting offline with cl100k_base, and fitting texts within the 8,192-token input limit."""

from __future__ import annotations

import hashlib
import re
import socket
from pathlib import Path

import pytest
import tiktoken

from embedding_ingest.providers import tokens
from embedding_ingest.providers.tokens import (
    CL100K_BASE_SHA256,
    MAX_INPUT_TOKENS,
    count_tokens,
    cut_to_tokens,
    fit_text,
    fit_with_context,
)

DIGITS = "1234567890" * 1_200  # 12,000 digits = 4,000 tokens (cl100k_base splits digits in threes)


def tiktokens_own_hash() -> str:
    """The expected_hash tiktoken itself publishes for cl100k_base.tiktoken (read from its source)."""
    source = (Path(tiktoken.__file__).parent.parent / "tiktoken_ext" / "openai_public.py").read_text()
    block = source[source.index("def cl100k_base"):]
    return re.search(r'expected_hash="([0-9a-f]{64})"', block).group(1)


def test_the_packaged_encoding_file_is_the_one_tiktoken_publishes():
    data = tokens.encoding_file().read_bytes()
    assert hashlib.sha256(data).hexdigest() == CL100K_BASE_SHA256 == tiktokens_own_hash()


def test_the_encoding_loads_with_no_network_at_all(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise OSError("network is not reachable from this test")

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    tokens.encoding.cache_clear()
    try:
        assert tokens.encoding().name == "cl100k_base"
        assert count_tokens("TOTAL 9.00") == 5  # "TOTAL", " ", "9", ".", "00"
    finally:
        tokens.encoding.cache_clear()


def test_the_issue_example_counts_12002_tokens():
    text = f"{DIGITS}\n{DIGITS}\n{DIGITS}"
    assert len(text) == 36_002 and count_tokens(text) == 12_002


def test_special_tokens_count_as_plain_text():
    # As one special token it would be 1; as text the embeddings endpoint sees 7 ordinary tokens.
    assert count_tokens("<|endoftext|>") == len(tokens.encoding().encode_ordinary("<|endoftext|>")) > 1


def test_context_rows_are_shortened_before_the_line_itself():
    fitted = fit_with_context([DIGITS], DIGITS, [DIGITS], separator="\n")
    above, own, below = fitted.text.split("\n")
    assert own == DIGITS  # the line keeps every character
    assert fitted.truncated and fitted.tokens == count_tokens(fitted.text) <= MAX_INPUT_TOKENS
    assert DIGITS.startswith(above) and DIGITS.startswith(below) and above and below
    assert fitted.full == f"{DIGITS}\n{DIGITS}\n{DIGITS}"


def test_a_line_too_long_on_its_own_is_cut_at_a_token_boundary_after_its_context_is_gone():
    own = "word " * 10_000
    fitted = fit_with_context(["above"], own, ["below"], separator="\n")
    above, kept, below = fitted.text.split("\n")
    assert (above, below) == ("", "")
    assert own.startswith(kept) and fitted.truncated
    assert count_tokens(fitted.text) == fitted.tokens <= MAX_INPUT_TOKENS
    assert fitted.tokens >= MAX_INPUT_TOKENS - 3  # cut at the limit, not far below it


def test_short_texts_are_untouched():
    fitted = fit_with_context(["<EDGE>"], "TOTAL 9.00", ["CASH 10.00"], separator="\n")
    assert (fitted.text, fitted.truncated) == ("<EDGE>\nTOTAL 9.00\nCASH 10.00", False)
    assert fitted.tokens == count_tokens(fitted.text)


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 8])
def test_cutting_never_splits_a_character_or_exceeds_the_limit(limit):
    text = "héllo wörld 日本語のテキスト 🧾🧾"
    cut = cut_to_tokens(text, limit)
    assert text.startswith(cut) and count_tokens(cut) <= limit
    assert "\ufffd" not in cut


def test_unstructured_text_is_cut_at_the_end():
    fitted = fit_text("x " * 20_000, limit=100)
    assert fitted.truncated and fitted.tokens <= 100 and ("x " * 20_000).startswith(fitted.text)
