"""Deterministic item ids: the OpenAI custom_id, the Chroma id and the ledger key of a line or word.

    IMAGE#{image_id}#RECEIPT#{receipt:05d}#LINE#{line:05d}[#WORD#{word:05d}]

'#' separates components, so a component may not contain it; numbers are fixed-width (five digits)
so ids sort in receipt/line/word order, which is why numbers above 99999 are refused too.

An item id is also a DynamoDB key: the sort key of two of the ledger's indexes (stores/dynamo_schema.py).
DynamoDB holds at most 1,024 bytes of UTF-8 in a sort key (Amazon DynamoDB developer guide, "Quotas":
partition key values 1-2,048 bytes, sort key values 1-1,024 bytes; moto enforces the same), so an
image_id may take what the longest id, a word's, leaves: MAX_IMAGE_ID_BYTES (982). Both ledgers refuse
the same ids, so a file imports alike whichever one it lands in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from embedding_ingest.receipts.exceptions import InvalidItemIdError
from embedding_ingest.stores.records import ItemKind

MAX_NUMBER = 99_999
SORT_KEY_MAX_BYTES = 1_024
# What a word's id adds around its image_id: IMAGE#...#RECEIPT#nnnnn#LINE#nnnnn#WORD#nnnnn (42 bytes).
_ID_OVERHEAD_BYTES = len(f"IMAGE##RECEIPT#{MAX_NUMBER}#LINE#{MAX_NUMBER}#WORD#{MAX_NUMBER}".encode())
MAX_IMAGE_ID_BYTES = SORT_KEY_MAX_BYTES - _ID_OVERHEAD_BYTES
_SHOWN_CHARACTERS = 32  # of an id too long to echo whole
_ITEM_ID = re.compile(
    r"IMAGE#(?P<image>[^#]+)#RECEIPT#(?P<receipt>\d{5})#LINE#(?P<line>\d{5})(?:#WORD#(?P<word>\d{5}))?"
)


def check_image_id(image_id: object) -> str:
    if not isinstance(image_id, str):
        raise InvalidItemIdError("image_id", image_id, "must be a string")
    if not image_id.strip():
        raise InvalidItemIdError("image_id", image_id, "must not be empty or blank")
    if "#" in image_id:
        raise InvalidItemIdError("image_id", shortened(image_id), "must not contain '#'")
    try:
        size = len(image_id.encode("utf-8"))
    except UnicodeEncodeError:  # JSON's "\ud800" decodes to a lone surrogate, which no store can hold
        raise InvalidItemIdError("image_id", shortened(image_id),
                                 "must be valid Unicode (it holds an unpaired surrogate)") from None
    if size > MAX_IMAGE_ID_BYTES:
        raise InvalidItemIdError(
            "image_id", shortened(image_id),
            f"must be at most {MAX_IMAGE_ID_BYTES} bytes in UTF-8, got {size:,} bytes (a word's id adds "
            f"{_ID_OVERHEAD_BYTES} to it, and DynamoDB sort keys hold at most {SORT_KEY_MAX_BYTES:,})",
            echo_value=False)
    return image_id


def shortened(text: str) -> str:
    """`text`, or its first characters and '...' when it is too long to repeat in a message."""
    return text if len(text) <= _SHOWN_CHARACTERS else text[:_SHOWN_CHARACTERS] + "..."


def check_number(component: str, value: object) -> int:
    # bool is an int subclass; True as a line number is a bug upstream, not a 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidItemIdError(component, value, "must be an integer")
    if value < 0:
        raise InvalidItemIdError(component, value, "must not be negative")
    if value > MAX_NUMBER:
        raise InvalidItemIdError(component, value, f"must be at most {MAX_NUMBER} (five digits)")
    return value


def line_item_id(image_id: str, receipt_number: int, line_id: int) -> str:
    return (
        f"IMAGE#{check_image_id(image_id)}"
        f"#RECEIPT#{check_number('receipt_number', receipt_number):05d}"
        f"#LINE#{check_number('line_id', line_id):05d}"
    )


def word_item_id(image_id: str, receipt_number: int, line_id: int, word_id: int) -> str:
    return f"{line_item_id(image_id, receipt_number, line_id)}#WORD#{check_number('word_id', word_id):05d}"


@dataclass(frozen=True, slots=True)
class ItemRef:
    """The parts of an item id."""

    image_id: str
    receipt_number: int
    line_id: int
    word_id: int | None = None

    @property
    def kind(self) -> ItemKind:
        return ItemKind.LINE if self.word_id is None else ItemKind.WORD

    @property
    def item_id(self) -> str:
        if self.word_id is None:
            return line_item_id(self.image_id, self.receipt_number, self.line_id)
        return word_item_id(self.image_id, self.receipt_number, self.line_id, self.word_id)


def parse_item_id(item_id: object) -> ItemRef:
    """Inverse of line_item_id / word_item_id; anything else is refused, naming what is wrong."""
    if not isinstance(item_id, str):
        raise InvalidItemIdError("item_id", item_id, "must be a string")
    match = _ITEM_ID.fullmatch(item_id)
    if match is None:
        raise InvalidItemIdError(
            "item_id", item_id,
            "expected IMAGE#<image_id>#RECEIPT#<5 digits>#LINE#<5 digits>[#WORD#<5 digits>]",
        )
    word = match["word"]
    return ItemRef(
        image_id=check_image_id(match["image"]),
        receipt_number=int(match["receipt"]),
        line_id=int(match["line"]),
        word_id=None if word is None else int(word),
    )
