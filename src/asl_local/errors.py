"""Errors of the ASL engine.

Two kinds live here: errors raised on purpose, all subclasses of `AslError` (a definition the engine
refuses, a name or input StartExecution would refuse, a function the invoker does not know), and
`StatesFailure`, the failure an execution carries as data while it unwinds (an ASL error name plus a
cause), which Retry/Catch match on and which ends up in ExecutionFailed.

The StartExecution errors are named after the error codes AWS returns for the same case
(https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html#API_StartExecution_Errors).
"""

from __future__ import annotations

import traceback
from pathlib import Path

STATES_ALL = "States.ALL"
STATES_RUNTIME = "States.Runtime"
STATES_DATA_LIMIT = "States.DataLimitExceeded"
STATES_TASK_FAILED = "States.TaskFailed"
STATES_TIMEOUT = "States.Timeout"
STATES_NO_CHOICE_MATCHED = "States.NoChoiceMatched"
STATES_RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
STATES_EXCEED_TOLERATED_FAILURE_THRESHOLD = "States.ExceedToleratedFailureThreshold"
STATES_BRANCH_FAILED = "States.BranchFailed"

# AWS: "States.ALL ... can't catch the States.DataLimitExceeded terminal error or Runtime error types."
NOT_MATCHED_BY_STATES_ALL = frozenset({STATES_RUNTIME, STATES_DATA_LIMIT})


class AslError(Exception):
    """Base of every error the engine raises on purpose: to the caller of `start_execution` (a
    definition it refuses, a name or an input StartExecution would refuse), or from an invoker inside a
    task (an unknown function, a crashed worker), where the class name is the error Retry/Catch see."""


class UnsupportedDefinitionError(AslError):
    """The definition uses an ASL construct the local engine does not interpret (or is malformed)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class InvalidDefinitionError(UnsupportedDefinitionError):
    """AWS itself would reject the definition at CreateStateMachine (InvalidDefinition); `code` is the
    diagnostic code AWS's validator reports (SCHEMA_VALIDATION_FAILED, INVALID_JSON_PATH, ...)."""

    def __init__(self, where: str, problem: str, code: str = "SCHEMA_VALIDATION_FAILED") -> None:
        super().__init__(where, f"{code}: {problem}")
        self.code = code


class ExecutionAlreadyExists(AslError):  # noqa: N818 - AWS's error code for StartExecution
    """StartExecution with the name of an execution that has ended, or that runs with another input."""

    def __init__(self, execution_arn: str) -> None:
        super().__init__(f"execution already exists: {execution_arn!r}")
        self.execution_arn = execution_arn


class InvalidName(AslError):  # noqa: N818 - AWS's error code for StartExecution
    """An execution name StartExecution would refuse (names.py has the rule)."""


class InvalidArn(AslError):  # noqa: N818 - AWS's error code for a malformed ARN
    """A state machine or execution ARN that is not one (arns.parse_states_arn has the forms)."""


class InvalidExecutionInput(AslError):  # noqa: N818 - AWS's error code for StartExecution
    """An execution input that is not JSON, or over the payload quota."""


class StatesFailure(Exception):  # noqa: N818 - an ASL failure travelling as data, not a Python bug
    """An execution-level failure: `error` is the ASL error name, `cause` a human/JSON text.

    `catchable=False` marks failures no Catch/Retry may intercept at all (history limit reached)."""

    def __init__(self, error: str, cause: str, *, catchable: bool = True) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause
        self.catchable = catchable

    def as_error_output(self) -> dict[str, str]:
        """The object a Catch places at its ResultPath."""
        return {"Error": self.error, "Cause": self.cause}


class RemoteTaskError(Exception):
    """A task function failed in another process; carries the original class name and message so the
    error name seen by Retry/Catch is the same as in-process (and nothing has to unpickle the task
    function's own exception classes). `stack_trace` is the function's traceback as
    `traceback.format_tb` lines (what Lambda's Python runtime reports as `stackTrace`)."""

    def __init__(self, error_name: str, message: str, stack_trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.message = message
        self.stack_trace = list(stack_trace or [])


def error_name_of(exc: BaseException) -> str:
    """The ASL error name of an exception raised by a task function: its class name."""
    return exc.error_name if isinstance(exc, RemoteTaskError) else type(exc).__name__


_ENGINE_DIR = str(Path(__file__).resolve().parent)


def stack_trace_of(exc: BaseException) -> list[str]:
    """The function's own traceback lines (`traceback.format_list`), for a local or a remote failure:
    the engine's frames are left out, as Lambda's runtime leaves out its own."""
    if isinstance(exc, RemoteTaskError):
        return exc.stack_trace
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if not str(Path(frame.filename).resolve()).startswith(_ENGINE_DIR)]
    return traceback.format_list(frames)


class FunctionNotFoundError(AslError):
    """A Task's resource names a function the invoker does not know."""

    def __init__(self, function_name: str, known: list[str]) -> None:
        super().__init__(f"no function named {function_name!r} (known: {', '.join(known) or 'none'})")
        self.function_name = function_name


class TaskProcessCrashedError(AslError):
    """The worker process running a task died (killed, out of memory) before returning."""
