"""Text as it is stored and embedded: normalised once, at import (issue 10).

- Lone UTF-16 surrogates (half of a pair, e.g. JSON "TOTAL\\ud83d") cannot be encoded as UTF-8, so
  SQLite, DynamoDB and the provider would all refuse them: each becomes U+FFFD.
- Unicode NFC, so one visible string has one stored form (and one content hash).
- Control characters (category Cc) are removed; the whitespace ones among them (tab, newline, ...)
  become a space first, so words they separated stay apart.
Special-token look-alikes such as "<|endoftext|>" are plain text: nothing here treats them specially,
and the provider's tokenizer is called with them as ordinary text (providers/).
"""

from __future__ import annotations

import unicodedata

REPLACEMENT = "\ufffd"
_CONTROL_WHITESPACE = {"\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85"}
# Characters that print nothing: whitespace, and format characters such as zero-width space,
# zero-width (non-)joiners, word joiner and the byte-order mark (all category Cf).
_INVISIBLE_CATEGORIES = {"Zs", "Zl", "Zp", "Cf", "Cc"}


def normalize_text(text: str) -> str:
    """The stored form of `text` (see module doc). Idempotent."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        text = "".join(REPLACEMENT if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    text = unicodedata.normalize("NFC", text)
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        text = "".join(" " if ch in _CONTROL_WHITESPACE else ch for ch in text
                       if ch in _CONTROL_WHITESPACE or unicodedata.category(ch) != "Cc")
    return text


def text_problem(raw: str, normalized: str) -> str | None:
    """Why an item with this text cannot be embedded, or None. `raw` is the text as read."""
    if not normalized.strip() or all(unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in normalized):
        what = "empty" if raw == "" else "blank or invisible-only (whitespace, zero-width, BOM or control)"
        return f"text is {what}: {raw!r}"
    if all(ch == REPLACEMENT or unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in normalized):
        return f"text cannot be encoded (only broken surrogates or replacement characters): {raw!r}"
    return None
