import random

from embedding_ingest.receipts.context import (
    EDGE,
    line_contexts,
    line_rows,
    shares_row,
    word_contexts,
    word_rows,
)
from embedding_ingest.receipts.models import PixelBox


def texts(rows):
    return [[item.text for item in row] for row in rows]


def box(y0, y1, x0=0, x1=10):
    return PixelBox(x0=x0, y0=y0, x1=x1, y1=y1)


def test_rule_is_centre_within_the_other_span():
    assert shares_row(box(0, 20), box(8, 30))  # second's centre 19 lies in 0..20
    assert shares_row(box(0, 100), box(80, 90))  # centre 85 in the tall box, not the reverse
    assert not shares_row(box(0, 10), box(10, 20))  # touching rows: neither centre inside the other
    assert not shares_row(box(0, 20), box(18, 40))  # overlap, but both centres outside


def test_rows_top_to_bottom_and_left_to_right(make_receipt):
    receipt = make_receipt([
        ("TOTAL", (10, 200, 90, 220)),
        ("9.00", (700, 202, 760, 219)),
        ("SHOP NAME", (300, 10, 600, 40)),
        ("DATE:", (10, 100, 60, 118)),
        ("25/12/2018", (200, 101, 400, 119)),
    ])
    assert texts(line_rows(receipt.lines)) == [["SHOP NAME"], ["DATE:", "25/12/2018"], ["TOTAL", "9.00"]]


def test_a_chain_of_offset_lines_does_not_merge_rows(make_receipt):
    # a-b share a row and b-c share a row, but a and c do not: c starts the next row.
    receipt = make_receipt([("a", (0, 0, 10, 20)), ("b", (20, 8, 30, 30)), ("c", (40, 18, 50, 40))])
    assert texts(line_rows(receipt.lines)) == [["a", "b"], ["c"]]


def test_rows_do_not_depend_on_input_order(make_receipt):
    lines = [("a", (0, 0, 10, 20)), ("b", (20, 8, 30, 30)), ("c", (40, 18, 50, 40)),
             ("d", (60, 0, 70, 19)), ("e", (5, 50, 15, 70)), ("f", (0, 52, 4, 69))]
    expected = texts(line_rows(make_receipt(lines).lines))
    shuffled = list(lines)
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert texts(line_rows(make_receipt(shuffled).lines)) == expected
    assert expected == [["a", "b", "d"], ["c"], ["f", "e"]]


def test_line_context_uses_neighbouring_rows_with_edge_padding(make_receipt):
    receipt = make_receipt([
        ("SHOP", (300, 10, 600, 40)),
        ("DATE:", (10, 100, 60, 118)),
        ("25/12/2018", (200, 101, 400, 119)),
        ("TOTAL 9.00", (10, 200, 400, 220)),
    ])
    contexts = line_contexts(receipt)
    assert contexts[0] == f"{EDGE}\nSHOP\nDATE: 25/12/2018"
    assert contexts[1] == "SHOP\nDATE:\nTOTAL 9.00"
    assert contexts[2] == "SHOP\n25/12/2018\nTOTAL 9.00"
    assert contexts[3] == f"DATE: 25/12/2018\nTOTAL 9.00\n{EDGE}"


def test_single_line_receipt_has_edges_both_sides(make_receipt):
    receipt = make_receipt([("ONLY", (0, 0, 100, 30))], [(0, "ONLY", (0, 0, 100, 30))])
    assert line_contexts(receipt) == {0: f"{EDGE}\nONLY\n{EDGE}"}
    assert word_contexts(receipt)[0].embed_text("ONLY") == f"{EDGE} {EDGE} ONLY {EDGE} {EDGE}"


def test_word_context_takes_two_neighbours_each_side_across_lines_of_the_row(make_receipt):
    receipt = make_receipt(
        [("QTY 1 PC", (0, 100, 300, 120)), ("9.00 RM", (600, 101, 900, 121)), ("NEXT", (0, 200, 80, 220))],
        [(0, "QTY", (0, 100, 90, 120)), (0, "1", (100, 100, 150, 120)), (0, "PC", (200, 100, 300, 120)),
         (1, "9.00", (600, 101, 750, 121)), (1, "RM", (800, 101, 900, 121)),
         (2, "NEXT", (0, 200, 80, 220))],
    )
    assert texts(word_rows(receipt.words)) == [["QTY", "1", "PC", "9.00", "RM"], ["NEXT"]]
    contexts = word_contexts(receipt)
    rendered = {word.text: contexts[word.word_id].embed_text(word.text) for word in receipt.words}
    assert rendered == {
        "QTY": f"{EDGE} {EDGE} QTY 1 PC",
        "1": f"{EDGE} QTY 1 PC 9.00",
        "PC": "QTY 1 PC 9.00 RM",
        "9.00": "1 PC 9.00 RM <EDGE>",
        "RM": f"PC 9.00 RM {EDGE} {EDGE}",
        "NEXT": f"{EDGE} {EDGE} NEXT {EDGE} {EDGE}",
    }
    assert contexts[3].left == ("PC", "1") and contexts[3].right == ("RM", EDGE)


def test_empty_receipt_has_no_rows(make_receipt):
    receipt = make_receipt([])
    assert line_rows(receipt.lines) == [] and line_contexts(receipt) == {} and word_contexts(receipt) == {}
