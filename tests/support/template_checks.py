"""Reading the rendered CloudFormation template as CloudFormation would (for tests)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from embedding_ingest.aws.function_table import FUNCTIONS


def resolved_definition(template: dict[str, Any], kind: str, arn_of: Callable[[str], str]) -> dict[str, Any]:
    """The `kind` state machine's Definition with its DefinitionSubstitutions applied, each function's ARN
    being `arn_of(function name)`. A name without a substitution raises KeyError."""
    machine = template["Resources"][f"{kind.capitalize()}StateMachine"]["Properties"]
    names = {f.logical_id: f.name for f in FUNCTIONS}
    values = {}
    for name, value in machine["DefinitionSubstitutions"].items():
        logical_id, attribute = value["Fn::GetAtt"]
        assert attribute == "Arn", value
        values[name] = arn_of(names[logical_id])
    text = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], json.dumps(machine["Definition"]))
    return json.loads(text)
