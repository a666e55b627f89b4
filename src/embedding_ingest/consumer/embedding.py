"""Query texts embedded with the snapshot's own model, so a query vector always lives in the same space
as the vectors it is compared with (lesson 13): the local hashed n-gram encoder for `local-hash-ngram-*`
snapshots, the local MiniLM model for `all-MiniLM-L6-v2-int8` ones, OpenAI's synchronous embeddings
endpoint (same model, same `dimensions`) for OpenAI ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from embedding_ingest.config import Settings
from embedding_ingest.exceptions import ConfigurationError
from embedding_ingest.providers.encoder import LOCAL_MODEL_NAME, HashedNgramEncoder
from embedding_ingest.snapshots.exceptions import ModelMismatchError

OPENAI_MODEL_PREFIX = "text-embedding-"  # OpenAI's embedding model family (platform.openai.com/docs/models)


class QueryEncoder(Protocol):
    model: str
    dimensions: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 row per text, shape (len(texts), dimensions)."""


class LocalQueryEncoder:
    """The local hashed n-gram encoder (providers/encoder.py), for `local-hash-ngram-*` snapshots."""

    def __init__(self, model: str, dimensions: int) -> None:
        self.model = model
        self.dimensions = dimensions
        self._encoder = HashedNgramEncoder(dimensions)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 row of norm 1 per text, shape (len(texts), dimensions); computed here."""
        return self._encoder.encode(list(texts))


class OpenAIQueryEncoder:
    """OpenAI's synchronous embeddings endpoint through the Batch provider's client (same retry policy,
    same `dimensions` parameter as the batch requests that built the snapshot)."""

    def __init__(self, model: str, dimensions: int, settings: Settings) -> None:
        if not settings.openai_api_key:
            raise ConfigurationError(f"the snapshot holds {model!r} vectors: embedding query texts needs "
                                     "OPENAI_API_KEY (or pass query_embeddings)")
        import openai

        from embedding_ingest.providers.openai_batch import OpenAIBatchProvider

        client = openai.OpenAI(api_key=settings.openai_api_key, base_url=settings.openai_base_url)
        self.model = model
        self.dimensions = dimensions
        self._provider = OpenAIBatchProvider(client, model=model, dimensions=dimensions)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 row per text, shape (len(texts), dimensions), from OpenAI's embeddings endpoint.
        Raises ModelMismatchError if the answer has another shape, and the provider's errors
        (providers/openai_batch.py) if the request fails."""
        vectors = np.asarray(self._provider.embed(list(texts)), dtype=np.float32)
        if vectors.shape != (len(texts), self.dimensions):
            raise ModelMismatchError(f"OpenAI returned embeddings of shape {vectors.shape} for "
                                     f"{len(texts)} texts; the snapshot needs {self.dimensions} "
                                     f"dimensions of {self.model!r}")
        return vectors


class MiniLMQueryEncoder:
    """all-MiniLM-L6-v2 (int8 ONNX) on this machine: providers/minilm."""

    def __init__(self, model: str, dimensions: int) -> None:
        from embedding_ingest.providers import minilm

        if dimensions != minilm.DIMENSIONS:
            raise ModelMismatchError(f"snapshot says {model!r} with {dimensions} dimensions; the model "
                                     f"makes {minilm.DIMENSIONS}")
        self.model, self.dimensions = model, dimensions
        self._encoder = minilm.encoder()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 row of norm 1 per text, shape (len(texts), 384); computed here."""
        return self._encoder.encode(list(texts))


def encoder_for(model: str, dimensions: int, settings: Settings) -> QueryEncoder:
    """The encoder of `model`. Raises ModelMismatchError for a model this library cannot embed with."""
    from embedding_ingest.providers.minilm import MODEL_NAME as MINILM

    if model == MINILM:
        return MiniLMQueryEncoder(model, dimensions)
    if model.startswith(LOCAL_MODEL_NAME.rsplit("-", 1)[0]):
        if model != LOCAL_MODEL_NAME:
            raise ModelMismatchError(f"snapshot holds {model!r} vectors; this version of the local "
                                     f"encoder makes {LOCAL_MODEL_NAME!r} vectors, so its queries would "
                                     "be meaningless")
        return LocalQueryEncoder(model, dimensions)
    if model.startswith(OPENAI_MODEL_PREFIX):
        return OpenAIQueryEncoder(model, dimensions, settings)
    raise ModelMismatchError(f"snapshot holds {model!r} vectors and no encoder here makes them; "
                             "pass query_embeddings made with that model")
