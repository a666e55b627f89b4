"""A moto server (real HTTP) with Step Functions' interpreter switched on and Lambda invocations served
by corpus_handlers, in its own process so nothing it patches leaks into the test process.

Usage: python corpus_moto_server.py PORT - prints "ready" once listening; stops when stdin closes."""

from __future__ import annotations

import json
import sys
import traceback
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_handlers import HANDLERS  # noqa: E402 - needs the path above
from moto.awslambda.models import LambdaBackend  # noqa: E402
from moto.core.config import default_user_config  # noqa: E402
from moto.moto_server.threaded_moto_server import ThreadedMotoServer  # noqa: E402


def invoke(backend: LambdaBackend, function_name: str, qualifier: str | None, body: Any, headers: Any,
           response_headers: dict[str, str]) -> bytes:
    """What the Lambda Python runtime answers: the JSON result, or an error payload with the
    x-amz-function-error header (Step Functions takes the error name from errorType)."""
    name = backend.get_function(function_name, qualifier).function_name
    try:
        payload = json.dumps(HANDLERS[name](json.loads(body) if body else {})).encode()
    except Exception as exc:  # noqa: BLE001 - reported as Lambda reports it
        response_headers["x-amz-function-error"] = "Unhandled"
        payload = json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__,
                              "requestId": str(uuid.uuid4()),
                              "stackTrace": traceback.format_tb(exc.__traceback__)}).encode()
    response_headers["Content-Length"] = str(len(payload))
    return payload


def main() -> None:
    default_user_config["stepfunctions"]["execute_state_machine"] = True
    with mock.patch.object(LambdaBackend, "invoke", invoke):
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
        server.start()
        print("ready", flush=True)
        sys.stdin.read()  # until the test session closes our stdin
        server.stop()


if __name__ == "__main__":
    main()
