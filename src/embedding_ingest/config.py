"""Settings, read from the environment (the reference's variable names) with safe local defaults."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The publish lock's lease (LOCK_TTL_SECONDS): its holder renews it every third of it; a waiter takes a
# lease over only once its record version stayed unchanged for a whole lease on the waiter's side. The
# state machines' lock wait is sized for the longest lease allowed (pipeline/policies.py).
LOCK_LEASE_DEFAULT_SECONDS = 300
LOCK_LEASE_MAX_SECONDS = 300


class StorageMode(StrEnum):
    S3 = "s3"
    EFS = "efs"
    AUTO = "auto"


class Settings(BaseSettings):
    """Everything configurable. Unset cloud variables mean the embedded default (local dir + SQLite)."""

    # Field names get an improbable prefix so only the aliases (the documented variables) are read from the
    # environment: with populate_by_name, a bare field name like `home` would otherwise read $HOME.
    model_config = SettingsConfigDict(env_prefix="EMBEDDING_INGEST_FIELD_", extra="ignore",
                                      populate_by_name=True)

    home: Path = Field(default=Path("./.embedding-ingest"), alias="EMBEDDING_INGEST_HOME")
    dynamodb_table_name: str | None = Field(default=None, alias="DYNAMODB_TABLE_NAME")
    chromadb_bucket: str | None = Field(default=None, alias="CHROMADB_BUCKET")
    chroma_root: Path | None = Field(default=None, alias="CHROMA_ROOT")
    chromadb_storage_mode: StorageMode = Field(default=StorageMode.AUTO, alias="CHROMADB_STORAGE_MODE")
    openai_api_key: str | None = Field(default=None, alias="OPENAI_API_KEY", repr=False)
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    aws_endpoint_url: str | None = Field(default=None, alias="AWS_ENDPOINT_URL")
    # Production operations (issue 13): the region of every AWS client. AWS_REGION (set by Lambda)
    # wins over AWS_DEFAULT_REGION; `--region` sets the latter; neither -> the profile's, else an error.
    aws_region: str | None = Field(default=None,
                                   validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))

    # The deployment stage (the template's Stage, dev by default there too): local function log groups
    # are named as deployed, /aws/lambda/<function>-<stage>; `batches reset ... STAGE` checks it.
    stage: str = Field(default="dev", alias="EMBEDDING_INGEST_STAGE", pattern=r"^[a-z0-9-]{0,16}$")
    # Local function logs are kept this long (the deployed log groups' LogRetentionDays default).
    log_retention_days: int = Field(default=365, alias="LOG_RETENTION_DAYS", gt=0)

    provider: str = Field(default="local", alias="EMBEDDING_PROVIDER")  # "local" | "openai"
    # None = the provider's default (local: local-hash-ngram-v1 / 384; openai: text-embedding-3-small / 1536).
    embedding_model: str | None = Field(default=None, alias="EMBEDDING_MODEL")
    embedding_dimensions: int | None = Field(default=None, alias="EMBEDDING_DIMENSIONS", gt=0)
    max_items_per_batch: int = Field(default=1_000, alias="MAX_ITEMS_PER_BATCH", gt=0)
    # The largest state carries ~0.9 KB per batch (poll results at the top level and in chunk_groups);
    # 60 keeps every state input/output under 64 KB (bench/payload.py) and still lists via a manifest.
    # Poll results (~450 B each) travel twice in the state data; past ~380 batches one state would
    # exceed Step Functions' 256 KB. 60 keeps every state under 64 KB (bench/), 250 is the hard cap.
    max_batches_per_execution: int = Field(default=60, alias="MAX_BATCHES_PER_EXECUTION", gt=0, le=250)
    snapshot_versions_kept: int = Field(default=4, alias="SNAPSHOT_VERSIONS_KEPT", gt=0)
    # A published version is a list of segments; a publish adds one small segment and does at most one
    # bounded merge (snapshots/merge_policy.py): the SNAPSHOT_MERGE_FACTOR smallest segments of the lowest
    # size tier (tiers grow by that factor above SNAPSHOT_MERGE_FLOOR_BYTES) if they fit in
    # both maximums (stored bytes of the records and vectors parts; records), or the smallest that fit past
    # SNAPSHOT_MAX_SEGMENTS segments that are not full (a soft cap: reads query every segment; full ones,
    # at least half a maximum, cannot be merged and do not count, as in Lucene). The maximums are MEASURED
    # (bench/merge_size.py; rows, fit and date in the README's "Function sizing", generated from
    # bench/merge_size_results.json): a cold FinalMerge merging four segments into one of S stored GiB
    # peaked at ~270 MB + ~1,140 MB x S of memory and ~2,900 MB x S of local disk, using ~980 CPU s x S
    # (50k..200k x 384-d, 25k/50k x 1536-d; 2 cores AMD EPYC, loaded, 2026-12-07). The bytes maximum is
    # set by the timeout: at 1 GiB a merge needs ~930 CPU s here, past VectorCompact's 900 s; 768 MiB
    # needs ~685 s (76%; 80% would allow ~0.79 GiB) and ~1,120 MB of memory (37% of 3,008 MB) and
    # ~2,170 MB of /tmp (21% of 10,240 MB). So four 100,000 x 384-d segments (~850 MiB) are not merged
    # into one: past SNAPSHOT_MAX_SEGMENTS three of them are. The 2.5 GiB estimated before needed
    # ~3.1 GB and ~2,400 CPU s. 500,000 records (~1.04 GiB at 384-d): narrower vectors store fewer bytes
    # per record, so the records maximum bounds what one merge indexes whatever the width.
    snapshot_max_segments: int = Field(default=8, alias="SNAPSHOT_MAX_SEGMENTS", gt=0)
    snapshot_merge_factor: int = Field(default=4, alias="SNAPSHOT_MERGE_FACTOR", ge=2)
    # 16 MiB: a tail of 1,000 x 1536-d archives to ~8 MB; with 64 MiB a 100,000 x 384-d base (~215 MB)
    # shared tier 0 with 1,000-record tails and was rewritten to take in three of them (bench, 2026-12-07).
    snapshot_merge_floor_bytes: int = Field(default=16 * 2**20, alias="SNAPSHOT_MERGE_FLOOR_BYTES", gt=0)
    snapshot_max_segment_bytes: int = Field(default=768 * 2**20, alias="SNAPSHOT_MAX_SEGMENT_BYTES", gt=0)
    snapshot_max_segment_records: int = Field(default=500_000, alias="SNAPSHOT_MAX_SEGMENT_RECORDS", gt=0)
    # Published snapshot for stock Chroma (issue 12): also keep {database}/snapshot/latest/ as a plain
    # Chroma persist directory in the object store after each publish, for consumers that download a
    # prefix (the reference's layout). Off by default: it uploads the whole collection every publish.
    snapshot_publish_plain: bool = Field(default=False, alias="SNAPSHOT_PUBLISH_PLAIN")
    hnsw_ef_construction: int = Field(default=100, alias="HNSW_EF_CONSTRUCTION", gt=0)
    hnsw_max_neighbors: int = Field(default=16, alias="HNSW_MAX_NEIGHBORS", gt=0)
    # Local provider only: polls a batch spends in each of validating/in_progress/finalizing
    # (0 = done at the first poll).
    local_polls_per_stage: int = Field(default=1, alias="LOCAL_PROVIDER_POLLS_PER_STAGE", ge=0)
    # Inside Lambda (the template sets it per function): the longest one call to AWS or OpenAI may take,
    # retries and waits included, so a failing call is reported before the function's timeout kills it
    # (stores/aws_clients.call_budget, providers/openai_batch.openai_call_budget). Unset: no limit.
    call_budget_seconds: float | None = Field(default=None, alias="CALL_BUDGET_SECONDS", gt=0)
    lock_ttl_seconds: int = Field(default=LOCK_LEASE_DEFAULT_SECONDS, alias="LOCK_TTL_SECONDS", gt=0,
                                  le=LOCK_LEASE_MAX_SECONDS)
    # Issue 19: how many times an item may come back for a provider reason (a batch expired, cancelled or
    # vanished, a queue limit, a gone output file) before it is FAILED; these never spend its attempts.
    max_provider_retries: int = Field(default=10, alias="MAX_PROVIDER_RETRIES", ge=0)

    # -- OpenAI at its real limits (issue 11): tokens, queue budgets, cost --------------------------
    # Local provider: a batch completes this many seconds after creation, like OpenAI's (0 = done at
    # the first poll); unset = walk by LOCAL_PROVIDER_POLLS_PER_STAGE. Read at submit, kept per batch.
    local_latency_seconds: float | None = Field(default=None, alias="LOCAL_PROVIDER_LATENCY_SECONDS", ge=0)
    # Input tokens (cl100k_base) in one batch; OpenAI has no per-batch token cap of its own, but a batch
    # above the enqueued-token budget could never be accepted.
    # At least one whole input (8,192 tokens), so every item fits some batch.
    max_tokens_per_batch: int = Field(default=1_000_000, alias="MAX_TOKENS_PER_BATCH", ge=8_192)
    # Per model, across batches the provider still holds: OpenAI's "batch queue limit" for
    # text-embedding-3-small at usage tier 1 is 3,000,000 enqueued tokens
    # (platform.openai.com/docs/guides/rate-limits, usage tiers); the API also refuses past 1,000,000
    # enqueued requests ("Enqueued request limit reached ... Limit: 1,000,000 enqueued requests").
    openai_enqueued_token_limit: int = Field(default=3_000_000, alias="OPENAI_ENQUEUED_TOKEN_LIMIT", gt=0)
    openai_enqueued_request_limit: int = Field(default=1_000_000, alias="OPENAI_ENQUEUED_REQUEST_LIMIT",
                                               gt=0)
    # USD per 1M input tokens at Batch API prices (platform.openai.com/docs/pricing, Batch column).
    # JSON in the environment, e.g. OPENAI_BATCH_PRICES='{"text-embedding-3-small": 0.01}'. A model
    # missing here (the local one) is priced as text-embedding-3-small.
    openai_batch_prices: dict[str, float] = Field(
        default_factory=lambda: {"text-embedding-3-small": 0.01, "text-embedding-3-large": 0.065,
                                 "text-embedding-ada-002": 0.05},
        alias="OPENAI_BATCH_PRICES")
    # Receipts as they really come (issue 10): a box sticking out of the image by at most this share
    # of the image's side is clamped onto it (and reported); further out, the item is skipped.
    receipt_box_tolerance: float = Field(default=0.02, alias="RECEIPT_BOX_TOLERANCE", ge=0, le=0.5)

    @property
    def objects_dir(self) -> Path:
        return self.home / "objects"

    @property
    def log_store_path(self) -> Path:
        """The local function logs (stores/log_store.py)."""
        return self.home / "logs.sqlite3"

    @property
    def ledger_path(self) -> Path:
        return self.home / "ledger.sqlite3"

    @property
    def cache_dir(self) -> Path:
        """Local cache of published snapshot versions (EFS in the original system)."""
        return self.chroma_root if self.chroma_root is not None else self.home / "chroma-cache"

    @property
    def uses_aws_objects(self) -> bool:
        return self.chromadb_bucket is not None

    @property
    def uses_aws_ledger(self) -> bool:
        return self.dynamodb_table_name is not None


# -- One-line configuration errors (issue 9) ----------------------------------------------------------
def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (plus `overrides`, by variable name). A bad value raises
    ConfigurationError with one line naming each variable, its value and the rule it breaks, e.g.
    "MAX_BATCHES_PER_EXECUTION='999': must be less than or equal to 250"."""
    from pydantic import ValidationError

    from embedding_ingest.exceptions import ConfigurationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = ".".join(str(part) for part in error.get("loc", ())) or "settings"
            rule = str(error.get("msg", "invalid")).removeprefix("Input should be ")
            problems.append(f"{variable}={error.get('input')!r}: must be {rule}"
                            if rule != error.get("msg") else f"{variable}={error.get('input')!r}: {rule}")
        raise ConfigurationError("; ".join(problems)) from None
