"""The CloudFormation template: valid for cfn-lint (which reads the state machines' definitions), sized
to deploy in a new account, state machines that are exactly the workflow builder's definitions, and IAM
that grants only what each part needs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from template_checks import resolved_definition
from typer.testing import CliRunner

from embedding_ingest.aws.deploy.template import INTERMEDIATE_PREFIXES, build_template
from embedding_ingest.aws.function_table import ALL_FUNCTIONS, BY_NAME, FUNCTIONS, MEMORY_PARAMETERS
from embedding_ingest.aws.functions import handlers
from embedding_ingest.cli.aws_commands import register
from embedding_ingest.pipeline.definitions import FUNCTION_NAMES, build_definition
from embedding_ingest.steps.registry import HANDLERS
from embedding_ingest.stores.dynamo_schema import TTL_ATTRIBUTE, table_definition

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[3]

# The reference's "Quick Reference Tables" -> Lambda Functions: memory MB, timeout s, storage MB. Memory
# above 3,008 MB is a parameter's to give: new accounts cannot create such a function until a quota increase.
NEW_ACCOUNT_MEMORY_MB = 3008
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


def _memory(template: dict, props: dict) -> tuple[int, dict | None]:
    """(default memory MB, the parameter giving it or None)."""
    size = props["MemorySize"]
    if isinstance(size, dict):
        parameter = template["Parameters"][size["Ref"]]
        return parameter["Default"], parameter
    return size, None


def test_every_step_has_one_function_sized_as_the_reference_says_but_within_a_new_accounts_memory(template):
    functions = _resources(template, "AWS::Lambda::Function")
    assert set(BY_NAME) == set(HANDLERS) == set(FUNCTION_NAMES) == set(REFERENCE_SIZES)
    sizes = {}
    for function in FUNCTIONS:
        props = functions[function.logical_id]["Properties"]
        memory, parameter = _memory(template, props)
        reference = REFERENCE_SIZES[function.name]
        assert memory == min(reference[0], NEW_ACCOUNT_MEMORY_MB), function.name
        if parameter is not None:  # raising it to the reference's size (or Lambda's limit) is one parameter
            assert parameter["MinValue"] <= memory and parameter["MaxValue"] == 10240
            assert str(reference[0]) in parameter["Description"]
        sizes[function.name] = (reference[0] if parameter else memory, props["Timeout"],
                                props["EphemeralStorage"]["Size"])
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
    for function in ALL_FUNCTIONS:  # the scheduled functions too
        memory, _ = _memory(template, functions[function.logical_id]["Properties"])
        assert memory <= NEW_ACCOUNT_MEMORY_MB, function.name
    assert set(MEMORY_PARAMETERS) <= set(template["Parameters"])


@pytest.mark.parametrize("kind", ["line", "word"])
def test_state_machines_run_the_builders_definition_with_the_functions_arns(template, kind):
    machine = template["Resources"][f"{kind.capitalize()}StateMachine"]["Properties"]
    assert "DefinitionString" not in machine
    variables = set(re.findall(r"\$\{(\w+)\}", json.dumps(machine["Definition"])))
    assert variables == set(machine["DefinitionSubstitutions"])  # every name bound, every binding used
    assert variables == {f"{f.logical_id}Arn" for f in FUNCTIONS if f.name in _functions_of(kind)}

    def deployed_arn(name: str) -> str:
        return f"arn:aws:lambda:eu-west-1:111122223333:function:{name}-prod"

    assert resolved_definition(template, kind, deployed_arn) == build_definition(kind, deployed_arn)


def test_cfn_lint_reads_the_definitions_a_planted_fault_is_reported(tmp_path, template):
    """With Definition (not a DefinitionString text) cfn-lint validates the ASL itself (rule E3601)."""
    planted = json.loads(json.dumps(template))
    states = planted["Resources"]["LineStateMachine"]["Properties"]["Definition"]["States"]
    states["CheckPendingBatches"]["Type"] = "Choise"
    path = tmp_path / "planted.json"
    path.write_text(json.dumps(planted))

    linted = subprocess.run([str(VENV_BIN / "cfn-lint"), "--format", "parseable", str(path)],
                            capture_output=True, text=True, check=False)

    assert linted.returncode != 0
    assert "E3601" in linted.stdout and "'Choise' is not one of" in linted.stdout, linted.stdout


def _functions_of(kind: str) -> set[str]:
    other = "word" if kind == "line" else "line"
    return set(FUNCTION_NAMES) - {f"embedding-{other}-poll"}


@pytest.mark.parametrize("kind", ["line", "word"])
def test_the_deployed_definition_passes_statelint(tmp_path, template, kind):
    """statelint also follows every Next (cfn-lint checks StartAt only)."""
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(resolved_definition(
        template, kind, lambda name: f"arn:aws:lambda:us-east-1:111122223333:function:{name}")))

    linted = subprocess.run([str(VENV_BIN / "statelint"), str(path)], capture_output=True, text=True,
                            check=False)

    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_state_machine_role_may_invoke_the_seven_functions_deliver_its_logs_and_trace(template):
    invoke, logs, traces = _statements(template["Resources"]["StateMachineRole"])
    assert invoke["Effect"] == "Allow" and invoke["Action"] == ["lambda:InvokeFunction"]
    assert invoke["Resource"] == [{"Fn::GetAtt": [f.logical_id, "Arn"]} for f in FUNCTIONS]
    # log delivery and X-Ray actions admit no narrower resource than "*"
    assert all(a.startswith("logs:") for a in logs["Action"])
    assert "logs:CreateLogDelivery" in logs["Action"] and logs["Resource"] == "*"
    assert all(a.startswith("xray:") for a in traces["Action"]) and traces["Resource"] == "*"
    for kind in ("Line", "Word"):
        props = template["Resources"][f"{kind}StateMachine"]["Properties"]
        assert props["RoleArn"] == {"Fn::GetAtt": ["StateMachineRole", "Arn"]}
        logging = props["LoggingConfiguration"]
        assert (logging["Level"], logging["IncludeExecutionData"]) == ("ERROR", False)  # no item texts
        (destination,) = logging["Destinations"]
        group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
        assert template["Resources"][group]["Properties"]["LogGroupName"]["Fn::Sub"].startswith(
            "/aws/vendedlogs/states/")
        assert props["TracingConfiguration"] == {"Enabled": True}


def test_every_log_group_keeps_a_year_by_default_and_every_function_traces(template):
    assert template["Parameters"]["LogRetentionDays"]["Default"] >= 365  # Control Tower CT.CLOUDWATCH.PR.2
    groups = _resources(template, "AWS::Logs::LogGroup")
    assert len(groups) == len(ALL_FUNCTIONS) + 2
    assert all(g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in groups.values())
    for function in ALL_FUNCTIONS:
        props = template["Resources"][function.logical_id]["Properties"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == "EmbeddingIngest"


def test_the_table_and_bucket_survive_a_delete_but_not_a_rolled_back_first_create(template):
    for logical_id in ("LedgerTable", "ChromaBucket"):
        resource = template["Resources"][logical_id]
        assert resource["DeletionPolicy"] == "RetainExceptOnCreate"
        assert resource["UpdateReplacePolicy"] == "Retain"


def test_every_checkov_skip_gives_its_reason(template):
    skipped = 0
    for name, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), name
            assert len(skip["comment"]) > 40, (name, skip)
            skipped += 1
    assert skipped >= 40


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
            if statement["Resource"] == "*":  # X-Ray's write actions admit no resource
                assert statement["Action"] == ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
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


def test_table_is_the_ledgers_schema_with_ttl(template):
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
