"""`--state-machine-arn` and `--execution-arn`: the execution verbs take the AWS CLI's options beside
their names, so the reference's runbook lines run as written.

A state machine ARN designates our line or word workflow by its name, in any region and account
(`...:stateMachine:line-ingest-sf-dev-1554303`, the reference's Pulumi name; `line-ingest-dev`, the
template's; `line-ingest`, the local engine's); an execution ARN designates the execution of that name
of such a state machine (local ARNs made with another account still resolve). On `--backend aws`
the ARNs go to Step Functions as they are. What is no ARN, or designates nothing, fails as AWS answers:
InvalidArn, StateMachineDoesNotExist, ExecutionDoesNotExist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from embedding_ingest.cli.output import EXIT_CONFIGURATION, OutputFormat, fail
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.records import ItemKind

StateMachineArnOption = typer.Option(None, "--state-machine-arn", metavar="ARN",
                                     help="The state machine by ARN (any account): line-ingest* or "
                                          "word-ingest*, instead of KIND")
ExecutionArnOption = typer.Option(None, "--execution-arn", metavar="ARN",
                                  help="The execution by ARN, instead of NAME")


class StateMachineDoesNotExist(InvalidInputError):  # noqa: N818 - AWS's error code
    """A state machine ARN that designates neither workflow."""


class ExecutionDoesNotExist(InvalidInputError):  # noqa: N818 - AWS's error code
    """No execution has this name or ARN."""


def workflow_from(workflow: ItemKind | None, state_machine_arn: str | None, *,
                  required: bool = True) -> ItemKind | None:
    """The workflow given as KIND or as --state-machine-arn (exactly one when `required`, at most one
    otherwise). Raises InvalidInputError (InvalidArn), StateMachineDoesNotExist."""
    from embedding_ingest.pipeline.engine_store import workflow_of_arn

    if workflow is not None and state_machine_arn is not None:
        raise InvalidInputError("give the workflow as KIND or as --state-machine-arn, not both")
    if state_machine_arn is None:
        if workflow is None and required:
            raise InvalidInputError("name the workflow: KIND (line or word) or --state-machine-arn ARN")
        return workflow
    named = workflow_of_arn(state_machine_arn)
    if named not in {kind.value for kind in ItemKind}:
        raise StateMachineDoesNotExist(f"State Machine Does Not Exist: {state_machine_arn!r} (the workflows "
                                       "are line-ingest* and word-ingest*)")
    return ItemKind(named)


def execution_from(name: str | None, execution_arn: str | None) -> str:
    """The execution given as NAME (or an ARN in its place) or as --execution-arn: exactly one."""
    if name is not None and execution_arn is not None:
        raise InvalidInputError("give the execution as NAME or as --execution-arn, not both")
    if name is None and execution_arn is None:
        raise InvalidInputError("name the execution: NAME or --execution-arn ARN")
    return execution_arn if execution_arn is not None else name or ""


def workflow_of_execution_arn(name_or_arn: str) -> ItemKind | None:
    """The workflow an execution ARN's state machine designates (None for a name, or another machine)."""
    if not name_or_arn.startswith("arn:"):
        return None
    machine = name_or_arn.split(":")[6] if len(name_or_arn.split(":")) > 6 else ""
    for kind in ItemKind:
        if machine == f"{kind.value}-ingest" or machine.startswith(f"{kind.value}-ingest-"):
            return kind
    return None


def given(output: OutputFormat, action: Callable[[], Any]) -> Any:
    """`action()`, or exit 2 with its one-line error: an ARN or name that designates nothing is bad input."""
    try:
        return action()
    except InvalidInputError as error:
        raise fail(error, output, EXIT_CONFIGURATION) from error
