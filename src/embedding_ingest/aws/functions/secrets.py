"""The OpenAI API key for a Lambda container, from (in this order of precedence):

1. OPENAI_API_KEY in the environment (local runs, tests);
2. AWS Secrets Manager: OPENAI_API_KEY_SECRET_ARN (a plain string, or a JSON object with an
   "OPENAI_API_KEY" or "api_key" field);
3. SSM Parameter Store: OPENAI_API_KEY_SSM_PARAMETER (a SecureString, read with decryption).

Fetched once per container and source (a warm Lambda does not pay a secrets call per invocation).
The value is never logged and never appears in an error message: errors name the source only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from embedding_ingest.aws.exceptions import SecretNotFoundError, SecretUnavailableError
from embedding_ingest.exceptions import ConfigurationError

SECRET_ARN_VARIABLE = "OPENAI_API_KEY_SECRET_ARN"
SSM_PARAMETER_VARIABLE = "OPENAI_API_KEY_SSM_PARAMETER"
KEY_VARIABLE = "OPENAI_API_KEY"
_JSON_FIELDS = ("OPENAI_API_KEY", "api_key")
# Codes meaning "this will not work until someone changes the configuration".
_MISCONFIGURED = {"ResourceNotFoundException", "ParameterNotFound", "AccessDeniedException",
                  "AccessDenied", "DecryptionFailure", "InvalidRequestException", "InvalidParameterException",
                  "ParameterVersionNotFound", "ValidationException", "InvalidKeyId"}

# botocore logs whole response bodies (the secret included) at DEBUG from these loggers.
WIRE_LOGGERS = ("botocore.parsers", "botocore.endpoint")

ClientFactory = Callable[[str], Any]

_cache: dict[tuple[str, str], str] = {}
_cache_lock = threading.Lock()
_fetching = threading.local()


class _SilentWhileFetching(logging.Filter):
    """Drops wire-level records of the thread that is reading a secret, whatever the log level."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_fetching, "active", False)


_silencer = _SilentWhileFetching()
for _name in WIRE_LOGGERS:
    logging.getLogger(_name).addFilter(_silencer)


@contextlib.contextmanager
def _wire_logs_silenced() -> Iterator[None]:
    _fetching.active = True
    try:
        yield
    finally:
        _fetching.active = False


def _default_client(service: str, endpoint_url: str | None) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=endpoint_url)


def openai_api_key(environ: Mapping[str, str], *, client_factory: ClientFactory | None = None) -> str | None:
    """The key, or None when no source is configured. `client_factory(service)` builds a boto3
    client (default: boto3 with AWS_ENDPOINT_URL)."""
    if environ.get(KEY_VARIABLE):
        return environ[KEY_VARIABLE]
    secret_arn = environ.get(SECRET_ARN_VARIABLE) or None
    parameter = environ.get(SSM_PARAMETER_VARIABLE) or None
    if secret_arn and parameter:
        raise ConfigurationError(f"set only one of {SECRET_ARN_VARIABLE} and {SSM_PARAMETER_VARIABLE}: "
                                 "two sources for one key would be ambiguous")
    if not secret_arn and not parameter:
        return None
    source = ("secretsmanager", secret_arn) if secret_arn else ("ssm", parameter)
    with _cache_lock:
        if source in _cache:
            return _cache[source]
    factory = client_factory or (lambda service: _default_client(service, environ.get("AWS_ENDPOINT_URL")))
    with _wire_logs_silenced():
        value = _fetch(source[0], source[1], factory)
    with _cache_lock:
        _cache[source] = value
    return value


def forget_cached_keys() -> None:
    """Drop cached keys (after a rotation; tests)."""
    with _cache_lock:
        _cache.clear()


def _fetch(service: str, name: str, factory: ClientFactory) -> str:
    what = f"secret {name}" if service == "secretsmanager" else f"SSM parameter {name}"
    try:
        client = factory(service)
        if service == "secretsmanager":
            response = client.get_secret_value(SecretId=name)
            raw = response.get("SecretString")
            value = _from_secret_string(raw, what) if raw is not None else None
        else:
            value = client.get_parameter(Name=name, WithDecryption=True)["Parameter"].get("Value")
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISCONFIGURED:
            raise SecretNotFoundError(f"cannot read {what}: {code}") from exc
        raise SecretUnavailableError(f"reading {what} failed: {code or 'unknown error'}") from exc
    except BotoCoreError as exc:
        raise SecretUnavailableError(f"reading {what} failed: {type(exc).__name__}") from exc
    if not value or not value.strip():
        raise SecretNotFoundError(f"{what} holds no OpenAI API key (it is empty or binary)")
    return value.strip()


def _from_secret_string(raw: str, what: str) -> str | None:
    """A plain key, or a JSON object holding it (the console's key/value secrets)."""
    text = raw.strip()
    if not text.startswith("{"):
        return text
    try:
        document = json.loads(text)
    except json.JSONDecodeError:  # its message and .doc would carry the secret: drop it
        raise SecretNotFoundError(f"{what} starts like JSON but is not valid JSON") from None
    for field in _JSON_FIELDS:
        if isinstance(document.get(field), str):
            return document[field]
    raise SecretNotFoundError(f"{what} is a JSON object without a string field {' or '.join(_JSON_FIELDS)}")
