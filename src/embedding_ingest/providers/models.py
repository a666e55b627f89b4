"""What each embedding model makes and takes: its native width and whether a request may ask for another.

Sources (issue 19):
- "By default, the length of the embedding vector is 1536 for text-embedding-3-small or 3072 for
  text-embedding-3-large" (platform.openai.com/docs/guides/embeddings); ada-002 makes 1536 floats (the
  openai-openapi spec's `Embedding` example).
- `dimensions`: "Only supported in `text-embedding-3` and later models" (openai-openapi,
  `CreateEmbeddingRequest`); ada-002 answers a request carrying it, even `1536`, with HTTP 400 "This model
  does not support specifying dimensions."
A request without `dimensions` gets the native width, so a batch line must carry it whenever the
configured width is not the native one; we send it for every model that takes it (explicit is cheaper
than a night of rejected vectors).
"""

from __future__ import annotations

from embedding_ingest.config import Settings
from embedding_ingest.exceptions import ConfigurationError

LOCAL_DEFAULT_MODEL = "local-hash-ngram-v1"
LOCAL_DEFAULT_DIMENSIONS = 384
OPENAI_DEFAULT_MODEL = "text-embedding-3-small"
OPENAI_DEFAULT_DIMENSIONS = 1536

NATIVE_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "all-MiniLM-L6-v2-int8": 384,  # providers/minilm (local provider only)
}
# Models that make their native width and no other (a smaller `dimensions` cannot be honoured).
FIXED_WIDTH = frozenset({"all-MiniLM-L6-v2-int8"})
# Models that refuse the `dimensions` parameter whatever its value.
NO_DIMENSIONS_PARAMETER = frozenset({"text-embedding-ada-002"})
DIMENSIONS_SETTING = "EMBEDDING_DIMENSIONS"


def native_dimensions(model: str) -> int | None:
    """The width `model` makes when a request does not say; None for a model not listed here."""
    return NATIVE_DIMENSIONS.get(model)


def takes_dimensions(model: str) -> bool:
    """Whether a request for `model` may carry `dimensions` (text-embedding-3, the local encoder...)."""
    return model not in NO_DIMENSIONS_PARAMETER


def resolve_dimensions(model: str, configured: int | None, *, default: int | None = None,
                       setting: str = DIMENSIONS_SETTING) -> int:
    """The width vectors of `model` will have, given the configured width (None: not set).

    Unset means the model's native width (else `default`). Raises ConfigurationError, one line naming
    `setting`, for a width the model cannot make: any width for a model that takes no `dimensions`
    (ada-002: the API refuses the parameter, even at its native 1536, so a request never carries it) other
    than its native one, or one above the native width."""
    native = native_dimensions(model)
    if configured is None:
        width = native if native is not None else default
        if width is None:
            raise ConfigurationError(f"{setting} is not set and {model} has no known native width; set it")
        return width
    if not takes_dimensions(model) and configured != native:
        raise ConfigurationError(f"{setting}={configured}: {model} takes no `dimensions` (it always makes "
                                 f"{native}-d vectors); unset {setting}")
    if model in FIXED_WIDTH and configured != native:
        raise ConfigurationError(f"{setting}={configured}: {model} makes {native}-d vectors and no other "
                                 f"width; unset {setting}")
    if native is not None and configured > native:
        raise ConfigurationError(f"{setting}={configured}: {model} makes at most {native} dimensions")
    return configured


def request_dimensions(model: str, dimensions: int) -> int | None:
    """The `dimensions` a request for `dimensions`-wide vectors of `model` carries (None: none)."""
    return dimensions if takes_dimensions(model) else None


def embedding_model(settings: Settings) -> str:
    """The model the configured provider embeds with (part of each item's content hash, issue 10)."""
    if settings.embedding_model:
        return settings.embedding_model
    return LOCAL_DEFAULT_MODEL if settings.provider == "local" else OPENAI_DEFAULT_MODEL


def embedding_dimensions(settings: Settings, model: str | None = None) -> int:
    """The width vectors of `model` (default: the configured one) will have: EMBEDDING_DIMENSIONS, else
    the model's native width. Raises ConfigurationError (one line naming the setting) for a width the
    model cannot make (resolve_dimensions)."""
    model = model or embedding_model(settings)
    default = LOCAL_DEFAULT_DIMENSIONS if settings.provider == "local" else OPENAI_DEFAULT_DIMENSIONS
    return resolve_dimensions(model, settings.embedding_dimensions, default=default)
