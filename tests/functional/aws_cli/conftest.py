"""The deployed state machines on moto's server, as the template creates them."""

from __future__ import annotations

import json

import pytest

from embedding_ingest.pipeline.definitions import build_definition

ROLE = "arn:aws:iam::123456789012:role/sfn"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function"


@pytest.fixture
def deployed(moto_endpoint, monkeypatch, tmp_path):
    """Both state machines created from the builder, as the template deploys them."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint.url)
    monkeypatch.setenv("EMBEDDING_INGEST_HOME", str(tmp_path))
    sfn = moto_endpoint.client("stepfunctions")
    arns = {}
    for kind in ("line", "word"):
        definition = build_definition(kind, lambda name: f"{FUNCTION_ARN}:{name}")
        machine = sfn.create_state_machine(name=f"{kind}-ingest-{tmp_path.name}"[:80],
                                           definition=json.dumps(definition), roleArn=ROLE)
        arns[kind] = machine["stateMachineArn"]
        monkeypatch.setenv(f"{kind.upper()}_STATE_MACHINE_ARN", arns[kind])
    return sfn, arns
