"""`embedding-ingest labels apply FILE.jsonl` as a function for programs (issue 23): label changes from a
label-validation system that does not own the receipt files, applied to the ledger as metadata
updates (no re-embedding, no token) and queued for the next workflow run.

One JSON object per line: `{"receipt_id", "receipt_number" (default 1), "line_id", "word_id"?,
"labels": [...]}` (labels as in a receipt file: tests/data/README.md). It *replaces* that item's labels
(`[]` clears them); a line without `word_id` labels the line itself. A later line for the same item
wins. A malformed line or an unknown item (not in the ledger, or being deleted) is reported by line
number and skipped; the rest is applied. The ledger relabels in place (ItemLedger.relabel,
stores/relabel.py): each receipt read once, only the items whose metadata changes written (the named
ones and their lines), each receipt whole; so a rerun after a crash completes the job and a second run
changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from embedding_ingest.receipts.exceptions import InvalidItemIdError
from embedding_ingest.receipts.ids import line_item_id, shortened, word_item_id
from embedding_ingest.receipts.importer import file_lines
from embedding_ingest.receipts.labels_input import RawLabel, check_labels, json_type
from embedding_ingest.receipts.living import label_metadata
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import ItemKind
from embedding_ingest.stores.relabel import Relabelled
from embedding_ingest.submission.metadata_updates import queue_metadata_updates

RECEIPTS_PER_WRITE = 50


class LabelProblem(BaseModel):
    """One line of a labels file that was skipped, and why."""

    model_config = ConfigDict(frozen=True)

    line_number: int
    field: str
    problem: str

    @property
    def message(self) -> str:
        return f"line {self.line_number}: {self.field}: {self.problem}"


class LabelsReport(BaseModel):
    """What `labels apply` did; field order is the key order of `--output json`."""

    source_file: str
    lines_read: int = 0
    items_labelled: int = 0  # distinct items named by good lines
    words_relabelled: int = 0  # items whose published metadata changes (a metadata update each)
    lines_relabelled: int = 0  # lines whose own labels or whose words' validated labels changed
    unchanged: int = 0  # named (and known) items whose labels were already these
    metadata_batches: list[str] = []
    problems: list[LabelProblem] = []
    tokens: int = 0  # always 0: labels are metadata, never embedded


class _RawLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    receipt_id: StrictStr
    receipt_number: StrictInt = 1
    line_id: StrictInt
    word_id: StrictInt | None = None
    labels: list[RawLabel]


def apply_labels(path: Path | str, ledger: Ledger) -> LabelsReport:
    """Apply a labels file to `ledger` and queue the metadata batches (module doc). Raises
    ReceiptFileError when the file cannot be read, store errors; bad lines never raise."""
    path = Path(path)
    report = LabelsReport(source_file=str(path))
    wanted: dict[tuple[str, int], dict[str, tuple[int, Any]]] = {}  # receipt -> item id -> (line, labels)
    for line_number, raw in file_lines(path):
        report.lines_read += 1
        parsed = _parse(line_number, raw, report)
        if parsed is not None:
            (key, item_id, labels) = parsed
            wanted.setdefault(key, {})[item_id] = (line_number, labels)
    keys = sorted(wanted)
    changed: set[str] = set()
    for start in range(0, len(keys), RECEIPTS_PER_WRITE):
        group = keys[start:start + RECEIPTS_PER_WRITE]
        relabels = [(key[0], key[1], {item_id: label_metadata(labels)
                                      for item_id, (_, labels) in wanted[key].items()}) for key in group]
        for key, done in zip(group, ledger.relabel(relabels), strict=True):
            _report_unknown(wanted[key], done, report)
            report.items_labelled += len(wanted[key]) - len(done.unknown)
            words = sum(1 for i in done.changes.metadata_changed if "#WORD#" in i)
            report.words_relabelled += words
            report.lines_relabelled += len(done.changes.metadata_changed) - words
            changed.update(done.changes.metadata_changed)
    named = {item_id for key in keys for item_id in wanted[key]}
    report.unchanged = report.items_labelled - len(named & changed)
    for kind in ItemKind:
        report.metadata_batches += [s.batch_id for s in queue_metadata_updates(kind, ledger)]
    report.problems.sort(key=lambda p: p.line_number)
    return report


def describe(report: LabelsReport) -> str:
    """"12 words relabelled, 3 lines' labels changed; no tokens needed"."""
    return (f"{report.words_relabelled} word(s) relabelled, {report.lines_relabelled} line(s)' labels "
            f"changed, {report.unchanged} already so; no tokens needed")


def _parse(line_number: int, raw: bytes, report: LabelsReport
           ) -> tuple[tuple[str, int], str, tuple] | None:
    def problem(field: str, what: str) -> None:
        report.problems.append(LabelProblem(line_number=line_number, field=field, problem=what))

    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problem("<line>", f"not a JSON object ({exc})")
        return None
    if not isinstance(value, dict):
        problem("<line>", f"must be a JSON object, got {json_type(value)}")
        return None
    try:
        entry = _RawLine.model_validate(value)
    except ValidationError as exc:
        detail = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in detail["loc"]) or "<line>"
        what = "is required but missing" if detail["type"] == "missing" else \
            f"{detail['msg'][:1].lower()}{detail['msg'][1:]}, got {json_type(detail['input'])}"
        problem(where, what)
        return None
    labels, field, wrong = check_labels(entry.labels, "labels")
    if wrong is not None:
        problem(field, wrong)
        return None
    try:
        parts = (entry.receipt_id, entry.receipt_number, entry.line_id)
        item_id = line_item_id(*parts) if entry.word_id is None else word_item_id(*parts, entry.word_id)
    except InvalidItemIdError as exc:
        problem(exc.component, f"{exc.problem}, got {exc.value!r}")
        return None
    return (entry.receipt_id, entry.receipt_number), item_id, labels


def _report_unknown(wanted: dict[str, tuple[int, Any]], done: Relabelled, report: LabelsReport) -> None:
    """A problem for each named item the ledger does not hold (or is deleting), by its line number."""
    for item_id in done.unknown:
        word = "#WORD#" in item_id
        field = "receipt_id" if not done.receipt_known else "word_id" if word else "line_id"
        report.problems.append(LabelProblem(
            line_number=wanted[item_id][0], field=field,
            problem=f"no {'word' if word else 'line'} {shortened(item_id)} in the ledger"))
