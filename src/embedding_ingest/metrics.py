"""Business metrics the steps and the scheduled functions count (items published, tokens billed, ...).

Code anywhere records with `record_metric`; where they go is the caller's process's business: inside
Lambda the function's Powertools Metrics publishes them as CloudWatch embedded-metric log lines
(aws/functions/observability.py installs that sink for the length of one invocation), and elsewhere
(the CLI, the local engine, tests) they go nowhere unless a sink is installed. Recording never raises:
a metric must not fail the work it describes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

SERVICE = "embedding-ingest"  # the `service` key of every log line and metric
NAMESPACE = "EmbeddingIngest"  # CloudWatch namespace of the metrics below
ITEMS_PUBLISHED = "ItemsPublished"  # records a final merge added to the published snapshot
TOKENS_BILLED = "TokensBilled"  # input tokens the provider billed for a finished batch
BATCHES_ACTIVE = "BatchesActive"  # batches of a workflow still active when an execution lists them
POLL_FAILURES = "PollFailures"  # batches an execution could not poll after every retry
SKIPPED_OVERLAPPING_RUN = "SkippedOverlappingRun"  # scheduled starts refused: the workflow was running
NAMES = (ITEMS_PUBLISHED, TOKENS_BILLED, BATCHES_ACTIVE, POLL_FAILURES, SKIPPED_OVERLAPPING_RUN)

# (name, value, workflow or None); values are counts
Sink = Callable[[str, float, str | None], None]

log = logging.getLogger(__name__)
_sink: Sink | None = None
_lock = threading.Lock()


def record_metric(name: str, value: float, *, workflow: str | None = None) -> None:
    """Count `value` of metric `name` (one of NAMES), for `workflow` ("line" | "word") when it is one
    workflow's. Without a sink installed this does nothing."""
    sink = _sink
    if sink is None:
        return
    try:
        sink(name, float(value), workflow)
    except Exception as exc:  # a metric must never fail the work it counts
        log.warning("metric %s not recorded: %r", name, exc)


@contextlib.contextmanager
def metrics_sink(sink: Sink) -> Iterator[None]:
    """Send every record_metric inside the block to `sink` (one at a time per process)."""
    global _sink
    with _lock:
        previous, _sink = _sink, sink
    try:
        yield
    finally:
        with _lock:
            _sink = previous
