"""The CloudFormation template: valid for cfn-lint, sized per the reference, state machines that are
exactly the workflow builder's definitions, and IAM that grants only what each part needs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from embedding_ingest.aws.deploy.template import INTERMEDIATE_PREFIXES, build_template
from embedding_ingest.aws.function_table import ALL_FUNCTIONS, BY_NAME, FUNCTIONS
from embedding_ingest.aws.functions import handlers
from embedding_ingest.cli.aws_commands import register
from embedding_ingest.pipeline.definitions import FUNCTION_NAMES, build_definition
from embedding_ingest.steps.registry import HANDLERS
from embedding_ingest.stores.dynamo_schema import TTL_ATTRIBUTE, table_definition

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[3]

# The reference's "Quick Reference Tables" -> Lambda Functions: memory MB, timeout s, storage MB.
REFERENCE_SIZES = {
    "embedding-list-pending": (256, 60, 512),
    "embedding-line-poll": (3008, 900, 3072),
    "embedding-word-poll": (3008, 900, 3072),
    "embedding-split-chunks": (512, 60, 512),
    "embedding-vector-compact": (8192, 900, 10240),
    "embedding-create-chunk-groups": (512, 60, 512),
    "embedding-mark-batches-complete": (256, 60, 512),
}


@pytest.fixture(scope="module")
def template() -> dict:
    return build_template()


def _resources(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _statements(resource: dict) -> list[dict]:
    """Every statement of a role's inline policies; a conditional one (Fn::If) as when its condition holds."""
    found = []
    for policy in resource["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                statement = statement["Fn::If"][1]
            found.append(statement)
    return found


@pytest.mark.parametrize("image_uri", [None, "123456789012.dkr.ecr.us-east-1.amazonaws.com/ingest:1"])
def test_cfn_lint_finds_nothing(tmp_path, image_uri):
    path = tmp_path / "template.json"
    path.write_text(json.dumps(build_template(image_uri_param=image_uri is None, image_uri=image_uri)))

    # No rule is ignored: errors, warnings and informational findings all fail the test.
    linted = subprocess.run([str(VENV_BIN / "cfn-lint"), "--format", "parseable", str(path)],
                            capture_output=True, text=True, check=False)

    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_every_step_has_one_function_sized_as_the_reference_says(template):
    functions = _resources(template, "AWS::Lambda::Function")
    assert set(BY_NAME) == set(HANDLERS) == set(FUNCTION_NAMES) == set(REFERENCE_SIZES)
    sizes = {}
    for function in FUNCTIONS:
        props = functions[function.logical_id]["Properties"]
        sizes[function.name] = (props["MemorySize"], props["Timeout"], props["EphemeralStorage"]["Size"])
        assert props["PackageType"] == "Image"
        assert props["Code"] == {"ImageUri": {"Ref": "ImageUri"}}
        module, entrypoint = props["ImageConfig"]["Command"][0].rsplit(".", 1)
        assert module == handlers.__name__
        assert getattr(handlers, entrypoint) is handlers.ENTRYPOINTS[function.name]
        env = props["Environment"]["Variables"]
        assert env["DYNAMODB_TABLE_NAME"] == {"Ref": "LedgerTable"}
        assert env["CHROMADB_BUCKET"] == {"Ref": "ChromaBucket"}
        assert ("OPENAI_API_KEY_SECRET_ARN" in env) is function.needs_provider
    assert sizes == REFERENCE_SIZES


@pytest.mark.parametrize("kind", ["line", "word"])
def test_state_machines_run_the_builders_definition_with_the_functions_arns(template, kind):
    machine = template["Resources"][f"{kind.capitalize()}StateMachine"]["Properties"]
    text = machine["DefinitionString"]["Fn::Sub"]
    variables = set(re.findall(r"\$\{([^}!]*)\}", text))
    assert variables == {f"{f.logical_id}.Arn" for f in FUNCTIONS if f.name in _functions_of(kind)}

    def deployed_arn(name: str) -> str:
        return f"arn:aws:lambda:eu-west-1:111122223333:function:{name}-prod"

    arn = {f"{f.logical_id}.Arn": deployed_arn(f.name) for f in FUNCTIONS}
    resolved = json.loads(re.sub(r"\$\{([^}!]*)\}", lambda m: arn[m.group(1)], text).replace("${!", "${"))
    expected = build_definition(kind, deployed_arn)
    assert resolved == expected


def _functions_of(kind: str) -> set[str]:
    other = "word" if kind == "line" else "line"
    return set(FUNCTION_NAMES) - {f"embedding-{other}-poll"}


@pytest.mark.parametrize("kind", ["line", "word"])
def test_the_deployed_definition_passes_statelint(tmp_path, template, kind):
    machine = template["Resources"][f"{kind.capitalize()}StateMachine"]["Properties"]
    text = machine["DefinitionString"]["Fn::Sub"]
    path = tmp_path / f"{kind}.json"
    path.write_text(re.sub(r"\$\{([^}!]*)\.Arn\}",
                           lambda m: f"arn:aws:lambda:us-east-1:111122223333:function:{m.group(1)}", text))

    linted = subprocess.run([str(VENV_BIN / "statelint"), str(path)], capture_output=True, text=True,
                            check=False)

    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_state_machine_role_may_only_invoke_the_seven_functions(template):
    (statement,) = _statements(template["Resources"]["StateMachineRole"])
    assert statement["Effect"] == "Allow" and statement["Action"] == ["lambda:InvokeFunction"]
    assert statement["Resource"] == [{"Fn::GetAtt": [f.logical_id, "Arn"]} for f in FUNCTIONS]
    for kind in ("Line", "Word"):
        assert template["Resources"][f"{kind}StateMachine"]["Properties"]["RoleArn"] == {
            "Fn::GetAtt": ["StateMachineRole", "Arn"]}


def test_only_the_poll_and_submit_functions_may_read_the_openai_secret_and_nothing_is_granted_wholesale(
        template):
    readers = set()
    for function in ALL_FUNCTIONS:
        role = template["Resources"][f"{function.logical_id}Role"]
        assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
            "Service": "lambda.amazonaws.com"}
        assert template["Resources"][function.logical_id]["Properties"]["Role"] == {
            "Fn::GetAtt": [f"{function.logical_id}Role", "Arn"]}
        for statement in _statements(role):
            assert not any(a.endswith("*") for a in statement["Action"]), statement
            assert statement["Resource"] != "*", statement
            if any(a.startswith("secretsmanager:") for a in statement["Action"]):
                readers.add(function.name)
                assert statement["Resource"] == {"Ref": "OpenAIApiKeySecretArn"}
    # list-pending reads the provider's batch listing to choose what to poll (no head-of-line blocking)
    assert readers == {"embedding-line-poll", "embedding-word-poll", "embedding-submit",
                       "embedding-list-pending"}


def test_functions_without_ledger_or_object_needs_get_no_such_grant(template):
    def actions(name: str) -> set[str]:
        role = template["Resources"][f"{BY_NAME[name].logical_id}Role"]
        return {a for s in _statements(role) for a in s["Action"]}

    assert not any(a.startswith("dynamodb:") for a in actions("embedding-create-chunk-groups"))
    assert not any(a.startswith("dynamodb:") for a in actions("embedding-split-chunks"))
    assert "s3:PutObject" not in actions("embedding-mark-batches-complete")
    assert "dynamodb:PutItem" not in actions("embedding-list-pending")


def test_bucket_is_versioned_private_and_expires_intermediate_prefixes(template):
    bucket = template["Resources"]["ChromaBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    expiring = {r["Prefix"]: r["ExpirationInDays"] for r in bucket["LifecycleConfiguration"]["Rules"]
                if "Prefix" in r}
    assert set(expiring) == set(INTERMEDIATE_PREFIXES) == {"intermediate/", "chunks/", "chunk_groups/",
                                                           "poll_manifests/"}
    assert all(days > 0 for days in expiring.values())


def test_table_is_the_ledgers_schema_with_ttl_on_the_lock_expiry(template):
    table = template["Resources"]["LedgerTable"]["Properties"]
    schema = table_definition("any")
    for field in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode"):
        assert table[field] == schema[field]
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}


def test_each_state_machine_alarms_on_failed_executions(template):
    alarms = _resources(template, "AWS::CloudWatch::Alarm").values()
    watched = {a["Properties"]["Dimensions"][0]["Value"]["Ref"] for a in alarms
               if a["Properties"]["MetricName"] == "ExecutionsFailed"
               and a["Properties"]["Namespace"] == "AWS/States"}
    assert watched == {"LineStateMachine", "WordStateMachine"}


def test_a_fixed_image_needs_its_uri():
    with pytest.raises(ValueError, match="image_uri"):
        build_template(image_uri_param=False)


def test_the_cli_writes_the_template(tmp_path):
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a group of one command would flatten away the "aws" name
    target = tmp_path / "out" / "stack.json"

    result = CliRunner().invoke(app, ["aws", "template", "--output-file", str(target)])

    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text()) == build_template()


def test_the_dockerfile_copies_files_that_exist_and_defaults_to_a_real_handler():
    dockerfile = (REPO / "src/embedding_ingest/aws/deploy/Dockerfile").read_text()
    copied = [part for line in dockerfile.splitlines() if line.startswith("COPY ")
              for part in line.split()[1:-1]]
    assert copied and all((REPO / part).exists() for part in copied)
    (command,) = re.findall(r'^CMD \["([^"]+)"\]', dockerfile, flags=re.MULTILINE)
    assert command in {f.command for f in FUNCTIONS}
