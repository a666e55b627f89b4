"""The Lambda functions the conformance corpus calls, served the same way to both engines: in this
process for the local engine, inside the moto server's process (corpus_moto_server.py) for moto.

Each is a pure function of its event, so both sides see the same results (retries are driven by
$$.State.RetryCount passed in the event, not by state kept between calls)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

ACCOUNT = "123456789012"  # moto's default account: the ARNs in the cases resolve on both sides
REGION = "us-east-1"

# How `slow` waits: real time on moto; the local engine's runner points it at its virtual clock.
SLEEP: list[Callable[[float], None]] = [time.sleep]


class CorpusError(Exception):
    """The error a `fail` function raises (its class name is the Step Functions error name)."""


class RetryableError(Exception):
    pass


def echo(event: Any) -> Any:
    return event


def fail(event: Any) -> Any:
    raise CorpusError(event.get("message", "boom") if isinstance(event, dict) else "boom")


def fail_until(event: dict[str, Any]) -> dict[str, Any]:
    """Fails while event["retry"] < event["succeed_on"]."""
    if event["retry"] < event["succeed_on"]:
        raise RetryableError(f"attempt {event['retry']} failed")
    return {"succeeded_on_retry": event["retry"]}


def big(event: dict[str, Any]) -> dict[str, Any]:
    return {"blob": "x" * int(event["bytes"])}


def slow(event: dict[str, Any]) -> dict[str, Any]:
    SLEEP[0](float(event["seconds"]))
    return {"slept": event["seconds"]}


def add(event: dict[str, Any]) -> int:
    return event["a"] + event["b"]


HANDLERS: dict[str, Callable[[Any], Any]] = {
    "echo": echo, "fail": fail, "fail_until": fail_until, "big": big, "slow": slow, "add": add}


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
