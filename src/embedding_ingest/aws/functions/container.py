"""What a Lambda container sets up once: settings fit for Lambda and the step context per function
(built lazily on the first invocation, reused while the container stays warm). Logs, metrics and
traces: observability.py.

Lambda's file system is read-only except /tmp, so unless EMBEDDING_INGEST_HOME is set the workspace
(and with it the snapshot version cache, unless CHROMA_ROOT points at an EFS mount) lives in /tmp.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from embedding_ingest.aws.exceptions import UnknownLambdaFunctionError
from embedding_ingest.aws.function_table import ALL_FUNCTIONS
from embedding_ingest.aws.functions.secrets import openai_api_key
from embedding_ingest.config import Settings
from embedding_ingest.exceptions import ConfigurationError
from embedding_ingest.steps.context import StepContext

LAMBDA_HOME = Path("/tmp/embedding-ingest")

_contexts: dict[tuple[str, str], StepContext] = {}
_contexts_lock = threading.Lock()


def running_in_lambda(environ: Mapping[str, str] = os.environ) -> bool:
    return bool(environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def lambda_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Settings from the environment; inside Lambda the workspace defaults to /tmp."""
    settings = Settings()
    if running_in_lambda(environ) and not environ.get("EMBEDDING_INGEST_HOME"):
        settings = settings.model_copy(update={"home": LAMBDA_HOME})
    return settings


class ProviderNotGranted:
    """The provider of a function that has no business calling OpenAI: it holds no key and its role
    may not read the secret, so any use is a wiring error reported by name."""

    def __init__(self, function_name: str) -> None:
        self._function_name = function_name

    def __getattr__(self, attribute: str) -> Any:
        raise ConfigurationError(f"{self._function_name} has no embedding provider (only the poll "
                                 f"functions do), yet a step used provider.{attribute}")


def step_context_for(function_name: str, environ: Mapping[str, str] = os.environ) -> StepContext:
    """The container's StepContext for `function_name`, built on first use. Keyed by the settings too,
    so a changed environment (tests, a local runner hosting several functions) gets fresh ports."""
    known = {f.name: f for f in ALL_FUNCTIONS}
    function = known.get(function_name)
    if function is None:
        raise UnknownLambdaFunctionError(f"no Lambda function is named {function_name!r}; "
                                         f"known: {sorted(known)}")
    settings = lambda_settings(environ)
    fingerprint = hashlib.sha256(settings.model_dump_json().encode()).hexdigest()
    key = (function_name, fingerprint)
    with _contexts_lock:  # Map iterations of a local run may enter at once; build one context
        if key not in _contexts:
            _contexts[key] = _build(function_name, settings, environ, needs_provider=function.needs_provider)
        return _contexts[key]


def _build(function_name: str, settings: Settings, environ: Mapping[str, str], *,
           needs_provider: bool) -> StepContext:
    from embedding_ingest.backends import aws_client, build_ledger, build_object_store, build_provider

    if needs_provider:
        if settings.provider == "openai" and not settings.openai_api_key:
            key = openai_api_key(environ, client_factory=lambda service: aws_client(service, settings))
            settings = settings.model_copy(update={"openai_api_key": key})
        provider = build_provider(settings)
    else:
        provider = ProviderNotGranted(function_name)
    return StepContext(objects=build_object_store(settings), ledger=build_ledger(settings),
                       provider=provider, settings=settings)


def forget_step_contexts() -> None:
    """Drop cached contexts, closing their ledgers (tests; a runner switching accounts)."""
    with _contexts_lock:
        contexts = list(_contexts.values())
        _contexts.clear()
    for context in contexts:
        close = getattr(context.ledger, "close", None)
        if close is not None:
            close()
