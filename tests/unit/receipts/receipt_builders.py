"""Synthetic receipt records for the receipts unit tests."""


def record(lines, words=(), **overrides):
    """lines: [(text, [x0, y0, x1, y1])]; words: [(line_id, text, bbox)]; ids are list positions."""
    value = {
        "receipt_id": "synthetic-1",
        "width": 1000,
        "height": 1000,
        "source": "unit-test",
        "lines": [{"line_id": i, "text": text, "bbox": list(box)} for i, (text, box) in enumerate(lines)],
        "words": [{"word_id": i, "line_id": line_id, "text": text, "bbox": list(box)}
                  for i, (line_id, text, box) in enumerate(words)],
        "fields": {"company": None},
    }
    value.update(overrides)
    return value
