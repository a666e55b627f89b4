"""The Lambda functions: one table shared by the entrypoints and the CloudFormation template, so a
function's size, its handler path and what it may touch are declared once.

FUNCTIONS are the seven workflow steps (sizes from the reference's "Quick Reference Tables", but no
default above 3,008 MB: new accounts may not create a larger function until a quota increase, so the
ones that profit from more memory take it from a template parameter, see MEMORY_PARAMETERS);
OPERATIONS_FUNCTIONS run on EventBridge Scheduler schedules outside the state machines (submitting
new items, starting one execution per schedule slot). Object-store access is by key prefix (the
layout of steps/keys.py and snapshots/publish.py); `{db}` stands for both databases (lines, words)."""

from __future__ import annotations

from dataclasses import dataclass

from embedding_ingest.pipeline.definitions import (
    CREATE_CHUNK_GROUPS,
    LIST_PENDING,
    MARK_BATCHES_COMPLETE,
    POLL,
    SPLIT_CHUNKS,
    VECTOR_COMPACT,
)

HANDLER_MODULE = "embedding_ingest.aws.functions.handlers"
DATABASES = ("lines", "words")

# DynamoDB actions by what a step does with the ledger (DynamoLedger's calls; a TransactWriteItems
# is authorized per contained action, so those are listed, not the transaction itself).
LEDGER_READ = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem")
LEDGER_WRITE_ITEMS = ("dynamodb:UpdateItem",)
LEDGER_LOCKS_AND_PUBLISH = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
# Submission: claim (a transaction of one Put and per-item Updates), roll a lost claim back (Delete).
LEDGER_CLAIM = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
# Mark complete forgets the items of a deletion batch once the published version lacks them (issue 10).
LEDGER_FORGET_DELETED = ("dynamodb:DeleteItem",)

# "New AWS accounts have reduced concurrency and memory quotas" (Lambda developer guide, quotas); the
# create then fails with "'MemorySize' value failed to satisfy constraint: Member must have value less
# than or equal to 3008". So no function asks for more by default.
NEW_ACCOUNT_MEMORY_MB = 3008
# Of a function's timeout, what one external call may take with its retries (so a hung call is reported
# by name before Lambda kills the function).
CALL_BUDGET_SHARE = 0.8
# Template parameters that raise a function's memory: name -> (what it sizes, the reference's size).
MEMORY_PARAMETERS: dict[str, tuple[str, int]] = {
    "VectorCompactMemoryMb": ("embedding-vector-compact (chunk, group and final merges)", 8192),
    "PollMemoryMb": ("embedding-line-poll and embedding-word-poll (parsing a batch's output file)", 3008),
}


@dataclass(frozen=True)
class LambdaFunction:
    name: str  # the reference's function name (the definitions' resource names)
    entrypoint: str  # attribute of aws.functions.handlers
    logical_id: str  # CloudFormation logical id
    memory_mb: int
    timeout_s: int
    ephemeral_mb: int
    reads: tuple[str, ...]  # object key prefixes (with {db}) it may read and list
    writes: tuple[str, ...]  # prefixes it may also write and delete
    ledger_actions: tuple[str, ...]
    needs_provider: bool = False  # only these build the OpenAI client (and may read the key)
    reads_snapshots: bool = False  # keeps published segments in its cache: gets the EFS mount if any
    starts_executions: bool = False  # may call states:StartExecution on the two state machines
    memory_parameter: str | None = None  # a MEMORY_PARAMETERS name: MemorySize is that parameter

    @property
    def call_budget_s(self) -> int:
        """CALL_BUDGET_SECONDS of this function: the longest one AWS or OpenAI call may take, retries
        included, leaving the rest of its timeout for the work around it (config.Settings)."""
        return int(self.timeout_s * CALL_BUDGET_SHARE)

    @property
    def command(self) -> str:
        return f"{HANDLER_MODULE}.{self.entrypoint}"

    def prefixes(self, patterns: tuple[str, ...]) -> list[str]:
        return sorted({p.format(db=db) for p in patterns for db in DATABASES})


_DELTAS = "{db}/delta/"
_SNAPSHOTS = "{db}/snapshot/"


def _poll(kind: str) -> LambdaFunction:
    return LambdaFunction(
        name=POLL[kind], entrypoint=f"{kind}_poll", logical_id=f"{kind.capitalize()}PollFunction",
        memory_mb=3008, timeout_s=900, ephemeral_mb=3072,
        reads=("poll_manifests/",), writes=(_DELTAS,),
        ledger_actions=LEDGER_READ + LEDGER_WRITE_ITEMS, needs_provider=True, memory_parameter="PollMemoryMb")


FUNCTIONS: tuple[LambdaFunction, ...] = (
    LambdaFunction(
        name=LIST_PENDING, entrypoint="list_pending", logical_id="ListPendingFunction",
        memory_mb=256, timeout_s=60, ephemeral_mb=512,
        # The provider's batch listing (GET /v1/batches) decides the polling order; what it shows is
        # written back to the batch summaries (listed_status).
        reads=(), writes=("poll_manifests/",), ledger_actions=LEDGER_READ + LEDGER_WRITE_ITEMS,
        needs_provider=True),
    _poll("line"),
    _poll("word"),
    LambdaFunction(
        name=SPLIT_CHUNKS, entrypoint="split_chunks", logical_id="SplitChunksFunction",
        memory_mb=512, timeout_s=60, ephemeral_mb=512,
        reads=("chunk_groups/",), writes=("chunks/",), ledger_actions=()),
    LambdaFunction(
        name=VECTOR_COMPACT, entrypoint="vector_compact", logical_id="VectorCompactFunction",
        memory_mb=NEW_ACCOUNT_MEMORY_MB, timeout_s=900, ephemeral_mb=10240,
        reads=(_DELTAS, "chunks/", "chunk_groups/"), writes=("intermediate/", _SNAPSHOTS),
        ledger_actions=LEDGER_READ + LEDGER_LOCKS_AND_PUBLISH, reads_snapshots=True,
        memory_parameter="VectorCompactMemoryMb"),
    LambdaFunction(
        name=CREATE_CHUNK_GROUPS, entrypoint="create_chunk_groups", logical_id="CreateChunkGroupsFunction",
        memory_mb=512, timeout_s=60, ephemeral_mb=512,
        reads=(), writes=("chunk_groups/",), ledger_actions=()),
    LambdaFunction(
        name=MARK_BATCHES_COMPLETE, entrypoint="mark_batches_complete",
        logical_id="MarkBatchesCompleteFunction", memory_mb=256, timeout_s=60, ephemeral_mb=512,
        reads=("chunk_groups/", _SNAPSHOTS), writes=(),
        ledger_actions=LEDGER_READ + LEDGER_WRITE_ITEMS + LEDGER_FORGET_DELETED, reads_snapshots=True),
)

SUBMIT = "embedding-submit"
START_EXECUTION = "embedding-start-execution"

OPERATIONS_FUNCTIONS: tuple[LambdaFunction, ...] = (
    # Builds each batch file in memory (MAX_ITEMS_PER_BATCH requests) and uploads it to OpenAI.
    LambdaFunction(
        name=SUBMIT, entrypoint="submit", logical_id="SubmitFunction",
        memory_mb=1024, timeout_s=900, ephemeral_mb=512, reads=(), writes=(),
        ledger_actions=LEDGER_READ + LEDGER_CLAIM, needs_provider=True),
    LambdaFunction(
        name=START_EXECUTION, entrypoint="start_execution", logical_id="StartExecutionFunction",
        memory_mb=256, timeout_s=30, ephemeral_mb=512, reads=(), writes=(), ledger_actions=(),
        starts_executions=True),
)

BY_NAME: dict[str, LambdaFunction] = {f.name: f for f in FUNCTIONS}
ALL_FUNCTIONS: tuple[LambdaFunction, ...] = FUNCTIONS + OPERATIONS_FUNCTIONS
