"""The conformance corpus: small definitions (cases/*.json) with an input and what AWS Step Functions
answers - an output, an error, or a rejected definition - run on the local engine and on moto's
Step Functions interpreter (LocalStack's, ported; LocalStack's tests were recorded against AWS).

A case file holds:
  definition, input            what to run
  expected                     {"output": ...} | {"error": name} (+ "cause" when it is asserted)
                               | {"status": "TIMED_OUT"} | {"invalid_definition": true}
  source                       the AWS documentation page the expected value comes from
  moto_differs (optional)      why moto answers otherwise (missing feature or bug): the expected
                               value then rests on `source`, not on moto
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import corpus_handlers
from botocore.exceptions import ClientError
from corpus_handlers import HANDLERS, REGION

from asl_local.clock import VirtualClock
from asl_local.engine import LocalEngine
from asl_local.errors import UnsupportedDefinitionError
from asl_local.invokers import InProcessInvoker
from asl_local.store import InMemoryExecutionStore

CASES_DIR = Path(__file__).resolve().parent / "cases"
SERVER_SCRIPT = Path(__file__).resolve().parent / "corpus_moto_server.py"
EXECUTION_DEADLINE_SECONDS = 60

@dataclass(frozen=True)
class Case:
    id: str
    definition: dict[str, Any]
    input: Any
    expected: dict[str, Any]
    source: str
    moto_differs: str | None

def load_cases() -> list[Case]:
    cases = []
    for path in sorted(CASES_DIR.glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        cases.append(Case(id=path.stem, definition=raw["definition"], input=raw.get("input", {}),
                          expected=raw["expected"], source=raw["source"],
                          moto_differs=raw.get("moto_differs")))
    return cases

def outcome(status: str, output: str | None = None, error: str | None = None,
            cause: str | None = None) -> dict[str, Any]:
    """What a run is compared on, shaped like `expected`."""
    if status == "INVALID":
        return {"invalid_definition": True}
    if status == "SUCCEEDED":
        try:
            return {"output": json.loads(output) if output is not None else None}
        except json.JSONDecodeError:
            return {"output_text": output}
    if status == "FAILED":
        return {"error": error, "cause": cause}
    return {"status": status}

def agrees(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    """`actual` matches `expected` on every key `expected` states (a cause only when it is stated)."""
    return all(actual.get(key) == value for key, value in expected.items())

def run_on_engine(case: Case, store: InMemoryExecutionStore | None = None) -> dict[str, Any]:
    """The case's outcome on the local engine; its execution is kept in `store` when one is given."""
    clock = VirtualClock()
    corpus_handlers.SLEEP[0] = clock.advance
    engine = LocalEngine(store or InMemoryExecutionStore(), InProcessInvoker(HANDLERS), clock=clock)
    try:
        record = engine.start_execution(case.id, case.definition, "run", case.input)
    except UnsupportedDefinitionError:
        return outcome("INVALID")
    finally:
        corpus_handlers.SLEEP[0] = time.sleep
    return outcome(record.status.value, record.output, record.error, record.cause)

class MotoCorpusServer:
    """One moto server process for the whole test session, with the corpus's Lambda functions."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        # MOTO_PORT: moto's Step Functions interpreter calls Lambda through this same server.
        self._process = subprocess.Popen([sys.executable, str(SERVER_SCRIPT), str(self.port)],
                                         env={**os.environ, "MOTO_PORT": str(self.port)},
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True)
        if self._process.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("the moto corpus server did not start")
        self.sfn = self._client("stepfunctions")
        self.role_arn = self._client("iam").create_role(
            RoleName="corpus", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                 "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
        lambdas = self._client("lambda")
        for name in HANDLERS:
            lambdas.create_function(FunctionName=name, Runtime="python3.11", Role=self.role_arn,
                                    Handler="placeholder.handler", Code={"ZipFile": _placeholder_zip()})
        self._runs = itertools.count(1)  # next() is atomic: run() may be called from several threads
        self.last_execution_arn: str | None = None  # of the latest run(): its history stays readable

    def _client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=f"http://127.0.0.1:{self.port}",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def run(self, case: Case) -> dict[str, Any]:
        try:
            machine = self.sfn.create_state_machine(name=f"{case.id[:60]}-{next(self._runs)}",
                                                    definition=json.dumps(case.definition),
                                                    roleArn=self.role_arn)["stateMachineArn"]
        except ClientError:  # InvalidDefinition, or moto's own validation errors
            return outcome("INVALID")
        arn = self.sfn.start_execution(stateMachineArn=machine, name="run",
                                       input=json.dumps(case.input))["executionArn"]
        self.last_execution_arn = arn  # (of the latest start, when runs overlap)
        deadline = time.monotonic() + EXECUTION_DEADLINE_SECONDS
        while (described := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            if time.monotonic() > deadline:
                self.sfn.stop_execution(executionArn=arn, error="Corpus.Hung", cause="still running")
                return {"status": "HUNG"}
            time.sleep(0.02)
        output = described.get("output")
        if output is not None:
            try:
                json.loads(output)
            except json.JSONDecodeError:  # moto returns a string output without its JSON quotes
                output = json.dumps(output)
        return outcome(described["status"], output, described.get("error"), described.get("cause"))

    def close(self) -> None:
        if self._process.stdin:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

def _placeholder_zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()
