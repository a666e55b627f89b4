"""Errors of the ASL engine.

Two kinds live here: errors raised to *callers* (a definition the engine refuses), and `StatesFailure`,
the failure an execution carries as data while it unwinds (an ASL error name plus a cause), which
Retry/Catch match on and which ends up in ExecutionFailed.
"""

from __future__ import annotations

from embedding_ingest.exceptions import TerminalError

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


class UnsupportedDefinitionError(TerminalError):
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
    error name seen by Retry/Catch is the same as in-process (and nothing has to unpickle our classes)."""

    def __init__(self, error_name: str, message: str) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.message = message


def error_name_of(exc: BaseException) -> str:
    """The ASL error name of an exception raised by a task function: its class name."""
    return exc.error_name if isinstance(exc, RemoteTaskError) else type(exc).__name__


class FunctionNotFoundError(TerminalError):
    """A Task's resource names a function the invoker does not know."""

    def __init__(self, function_name: str, known: list[str]) -> None:
        super().__init__(f"no function named {function_name!r} (known: {', '.join(known) or 'none'})")
        self.function_name = function_name


class TaskProcessCrashedError(TerminalError):
    """The worker process running a task died (killed, out of memory) before returning."""
