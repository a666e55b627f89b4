import subprocess
import sys

import numpy as np
import pytest

from embedding_ingest.providers.encoder import HashedNgramEncoder


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_vectors_are_unit_length_float32_of_the_configured_dimensions():
    vectors = HashedNgramEncoder(96).encode(["TOTAL 12.50", "Whole Foods Market", "x", ""])
    assert vectors.shape == (4, 96)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_similar_texts_are_closer_than_unrelated_ones():
    encoder = HashedNgramEncoder()
    total, total_typo, reordered, unrelated = encoder.encode(
        [
            "TOTAL AMOUNT DUE 45.10",
            "TOTAL AMOUNT DUE 45.70",
            "AMOUNT DUE TOTAL 45.10",
            "Thank you for shopping",
        ]
    )
    assert cosine(total, total_typo) > 0.8
    assert cosine(total, reordered) > 0.6
    assert cosine(total, unrelated) < 0.2


def test_case_and_spacing_do_not_change_the_vector():
    encoder = HashedNgramEncoder(64)
    a, b = encoder.encode(["Milk  2% gallon", "milk 2% GALLON"])
    np.testing.assert_array_equal(a, b)


def test_batch_encoding_matches_one_by_one_encoding():
    encoder = HashedNgramEncoder(128)
    texts = ["apples", "bananas 3 @ 0.25", "", "apples"]
    batch = encoder.encode(texts)
    for row, text in zip(batch, texts, strict=True):
        np.testing.assert_array_equal(row, np.asarray(encoder.encode_one(text), dtype=np.float32))
    np.testing.assert_array_equal(batch[0], batch[3])


def test_vectors_are_identical_in_another_process_with_another_hash_seed():
    code = (
        "from embedding_ingest.providers.encoder import HashedNgramEncoder;"
        "print(repr(HashedNgramEncoder(32).encode_one('SUBTOTAL 9.99')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout
    assert eval(out) == HashedNgramEncoder(32).encode_one("SUBTOTAL 9.99")  # noqa: S307 - our own repr


def test_empty_text_still_gets_a_unit_vector():
    vector = HashedNgramEncoder(16).encode([""])[0]
    assert np.linalg.norm(vector) == pytest.approx(1.0)


@pytest.mark.parametrize("dimensions", [0, -3])
def test_rejects_non_positive_dimensions(dimensions):
    with pytest.raises(ValueError, match="dimensions"):
        HashedNgramEncoder(dimensions)
