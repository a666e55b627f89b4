"""asl_local: a local interpreter of the Amazon States Language, with Step Functions' semantics.

It runs a state machine definition (JSON or a dict) in this process: `LocalEngine.start_execution`
compiles and checks the definition as CreateStateMachine would, runs it to completion and records the
execution and its event history in an `ExecutionStore` (in memory, or the caller's own through the
store protocol), in the shapes DescribeExecution and GetExecutionHistory return. Tasks call functions
through an `Invoker` (in this process, or in a process pool); time goes through a `Clock` (real, or
virtual so that a one-hour Wait takes no time). It depends on nothing but jsonpath-ng.

Layout: `engine/` (one module per state type, the compiler and the runner), `intrinsics/` (parser and
functions), `paths` (JSONPath), `templates` (payload templates: paths and intrinsics), `history`,
`limits` (payload and history quotas), `clock`, `invokers`, `timestamps`, `names` (execution names),
`arns` (state machine, execution and function ARNs),
`store` (the store protocol, its records, the in-memory store), `errors`.
"""

from asl_local.arns import (
    DEFAULT_ACCOUNT,
    DEFAULT_REGION,
    StatesArn,
    execution_arn,
    lambda_function_arn,
    parse_states_arn,
    state_machine_arn,
)
from asl_local.clock import Clock, RealClock, VirtualClock
from asl_local.engine import LocalEngine, compile_definition
from asl_local.errors import (
    AslError,
    ExecutionAlreadyExists,
    InvalidArn,
    InvalidDefinitionError,
    InvalidExecutionInput,
    InvalidName,
    StatesFailure,
    UnsupportedDefinitionError,
)
from asl_local.history import to_aws_history, to_describe_execution
from asl_local.invokers import (
    InProcessInvoker,
    Invocation,
    Invoker,
    ProcessPoolInvoker,
    current_invocation,
)
from asl_local.store import (
    ExecutionRecord,
    ExecutionStatus,
    ExecutionStore,
    HistoryEvent,
    InMemoryExecutionStore,
)

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_REGION",
    "AslError",
    "Clock",
    "ExecutionAlreadyExists",
    "ExecutionRecord",
    "ExecutionStatus",
    "ExecutionStore",
    "HistoryEvent",
    "InMemoryExecutionStore",
    "InProcessInvoker",
    "InvalidArn",
    "InvalidDefinitionError",
    "InvalidExecutionInput",
    "InvalidName",
    "Invocation",
    "Invoker",
    "LocalEngine",
    "ProcessPoolInvoker",
    "RealClock",
    "StatesArn",
    "StatesFailure",
    "UnsupportedDefinitionError",
    "VirtualClock",
    "compile_definition",
    "current_invocation",
    "execution_arn",
    "lambda_function_arn",
    "parse_states_arn",
    "state_machine_arn",
    "to_aws_history",
    "to_describe_execution",
]
