"""Issue 10's failing inputs, through the real command line: one bad word, a box a pixel outside the
image, half a surrogate pair, and a corrected receipt; plus `receipts delete` and `batches show`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pipeline import receipts_file

EXIT_SOME_REJECTED = 3


def small_receipt(words, *, line_text="TOTAL 12.00", receipt_id="r-1"):
    return {"receipt_id": receipt_id, "width": 100, "height": 100,
            "lines": [{"line_id": 0, "text": line_text, "bbox": [0, 0, 80, 10]}],
            "words": [{"word_id": i, "line_id": 0, "text": text, "bbox": box}
                      for i, (text, box) in enumerate(words)]}


def write(tmp_path, *records, name="receipts.jsonl"):
    path = tmp_path / name
    # ensure_ascii keeps "\ud83d" as the JSON escape a real file would carry
    path.write_text("".join(json.dumps(r, ensure_ascii=True) + "\n" for r in records), encoding="utf-8")
    return path


def test_a_blank_word_skips_only_that_word(cli, tmp_path):
    path = write(tmp_path, small_receipt([("TOTAL", [0, 0, 40, 10]), ("  ", [40, 0, 80, 10])]))

    report = cli.json("receipts", "import", str(path))  # exit 0: the receipt was imported

    assert (report["receipts_imported"], report["receipts_rejected"]) == (1, 0)
    assert (report["lines_added"], report["words_added"], report["items_skipped"]) == (1, 1, 1)
    (skipped,) = report["skipped_items"]
    assert (skipped["receipt_id"], skipped["field"], skipped["item"]) == ("r-1", "words[1].text",
                                                                          "word 1 of line 0")
    assert "blank" in skipped["problem"]
    table = cli.run("receipts", "import", str(write(tmp_path, small_receipt(
        [("TOTAL", [0, 0, 40, 10]), ("\u200b", [40, 0, 80, 10])]), name="again.jsonl"))).stdout
    assert "Skipped items" in table and "words[1].text" in table


def test_a_box_one_pixel_outside_the_image_is_clamped_and_counted(cli, tmp_path):
    path = write(tmp_path, small_receipt([("TOTAL", [0, -1, 40, 10])]),
                 small_receipt([("TOTAL", [0, -9, 40, 10])], receipt_id="r-far"))

    report = cli.json("receipts", "import", str(path))

    assert (report["receipts_imported"], report["words_added"], report["boxes_clamped"]) == (2, 1, 1)
    (clamped,) = report["clamped_boxes"]
    assert (clamped["receipt_id"], clamped["original"], clamped["clamped"]) == (
        "r-1", [0, -1, 40, 10], [0, 0, 40, 10])
    (far,) = report["skipped_items"]  # 9 px on a 100 px image is past the 2% tolerance
    assert far["receipt_id"] == "r-far" and "outside the 100x100 image by more than 2%" in far["problem"]


def test_half_a_surrogate_pair_is_stored_as_a_replacement_character(cli, tmp_path):
    earlier = receipts_file(tmp_path, 2)
    damaged = small_receipt([("TOTAL\ud83d", [0, 0, 40, 10])], receipt_id="r-surrogate")
    path = tmp_path / "mixed.jsonl"
    path.write_text(earlier.read_text() + json.dumps(damaged) + "\n", encoding="utf-8")

    report = cli.json("receipts", "import", str(path))  # no crash, JSON on stdout

    assert (report["receipts_imported"], report["items_skipped"]) == (3, 0)
    earlier_words = sum(len(json.loads(r)["words"]) for r in earlier.read_text().splitlines())
    assert report["words_added"] == earlier_words + 1, "every receipt has its words"
    shown = cli.json("status")["items"]["word"]
    assert shown["NONE"] == earlier_words + 1


def test_receipts_delete_and_batches_show(cli, tmp_path):
    path = receipts_file(tmp_path, 2)
    first, second = (json.loads(line)["receipt_id"] for line in path.read_text().splitlines())
    cli.json("receipts", "import", str(path))

    deleted = cli.json("receipts", "delete", first, "nope-404", code=EXIT_SOME_REJECTED)

    assert deleted["receipts_deleted"] == [f"{first}#1"] and deleted["unknown_receipt_ids"] == ["nope-404"]
    assert deleted["lines_removed"] > 0 and len(deleted["deletion_batches"]) == 2
    shown = cli.json("batches", "show", deleted["deletion_batches"][0])
    assert (shown["operation"], shown["status"], shown["unknown_custom_ids"]) == ("delete", "PENDING", [])
    as_table = cli.run("--utc", "batches", "show", deleted["deletion_batches"][0]).stdout
    submitted = datetime.fromtimestamp(shown["submitted_at"], UTC).isoformat(timespec="seconds")
    assert submitted.replace("+00:00", "Z") in as_table and str(shown["submitted_at"]) not in as_table
    assert "no output line with a custom_id outside this batch" in " ".join(as_table.split())
    listed = cli.json("batches", "list")["batches"]
    assert {b["batch_id"] for b in listed} == set(deleted["deletion_batches"])
    assert all("unknown_custom_ids" in b for b in listed)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(f"{second}\n\n")
    assert cli.json("receipts", "delete", "--file", str(ids_file))["receipts_deleted"] == [f"{second}#1"]
    assert "no batch 'missing'" in cli.run("batches", "show", "missing", code=2).stderr
    assert "name the receipts" in cli.run("receipts", "delete", code=2).stderr
