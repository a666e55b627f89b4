"""The OpenAI API key for a Lambda container, from (in this order of precedence):

1. OPENAI_API_KEY in the environment (local runs, tests);
2. AWS Secrets Manager: OPENAI_API_KEY_SECRET_ARN (a plain string, or a JSON object with an
   "OPENAI_API_KEY" or "api_key" field);
3. SSM Parameter Store: OPENAI_API_KEY_SSM_PARAMETER (a SecureString, read with decryption).

Read through AWS Lambda Powertools' Parameters (SecretsProvider / SSMProvider, on a client of ours, so
the project's retry configuration applies), which caches it per container for five minutes
(POWERTOOLS_PARAMETERS_MAX_AGE): a warm Lambda does not pay a secrets call per invocation, and a rotated
key is picked up without a redeploy. The value is never logged and never appears in an error message:
errors name the source only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
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

_providers: dict[tuple[str, str | None], SecretsProvider | SSMProvider] = {}
_providers_lock = threading.Lock()
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
    client (default: boto3 with AWS_ENDPOINT_URL); the first client of a service and endpoint is kept
    with its Powertools provider (and so its cache)."""
    if environ.get(KEY_VARIABLE):
        return environ[KEY_VARIABLE]
    secret_arn = environ.get(SECRET_ARN_VARIABLE) or None
    parameter = environ.get(SSM_PARAMETER_VARIABLE) or None
    if secret_arn and parameter:
        raise ConfigurationError(f"set only one of {SECRET_ARN_VARIABLE} and {SSM_PARAMETER_VARIABLE}: "
                                 "two sources for one key would be ambiguous")
    if not secret_arn and not parameter:
        return None
    service, name = ("secretsmanager", secret_arn) if secret_arn else ("ssm", parameter)
    endpoint = environ.get("AWS_ENDPOINT_URL")
    factory = client_factory or (lambda wanted: _default_client(wanted, endpoint))
    with _wire_logs_silenced():
        return _fetch(service, str(name), _provider(service, endpoint, factory))


def forget_cached_keys() -> None:
    """Drop cached keys (after a rotation; tests)."""
    with _providers_lock:
        _providers.clear()


def _provider(service: str, endpoint: str | None, factory: ClientFactory) -> SecretsProvider | SSMProvider:
    with _providers_lock:
        if (service, endpoint) not in _providers:
            kind = SecretsProvider if service == "secretsmanager" else SSMProvider
            _providers[service, endpoint] = kind(boto3_client=factory(service))
        return _providers[service, endpoint]


def _fetch(service: str, name: str, provider: SecretsProvider | SSMProvider) -> str:
    what = f"secret {name}" if service == "secretsmanager" else f"SSM parameter {name}"
    try:
        if service == "secretsmanager":
            raw = provider.get(name)
            value = _from_secret_string(raw, what) if isinstance(raw, str) else None
        else:
            value = provider.get(name, decrypt=True)
    except GetParameterError as exc:
        # Powertools wraps the client's error (its message) without chaining it; the cause is the context.
        cause = exc.__context__
        if isinstance(cause, ClientError):
            code = str(cause.response.get("Error", {}).get("Code", ""))
            if code in _MISCONFIGURED:
                raise SecretNotFoundError(f"cannot read {what}: {code}") from None
            raise SecretUnavailableError(f"reading {what} failed: {code or 'unknown error'}") from None
        reason = type(cause).__name__ if isinstance(cause, BotoCoreError) else "unknown error"
        raise SecretUnavailableError(f"reading {what} failed: {reason}") from None
    if not isinstance(value, str) or not value.strip():
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
