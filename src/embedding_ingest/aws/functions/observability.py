"""AWS Lambda Powertools inside the functions: one Logger, Metrics and Tracer per container, and
`instrumented`, which every entrypoint wears.

- Logger: everything the package logs (steps, stores, this package) leaves on stdout (which Lambda
  ships to the function's log group) as one JSON object per line: Powertools' keys (level, location,
  message, timestamp, service, name, xray_trace_id when tracing) with the invocation's function_name,
  function_request_id and cold_start, and the step fields (function, execution, batch_id, ...) at the
  top level. Not propagated to the root logger: Lambda's own root handler would print every record a
  second time, unstructured. Level: LOG_LEVEL (default INFO).
- Metrics: record_metric (embedding_ingest.metrics) during an invocation adds to Powertools Metrics,
  flushed at its end (even a failed one) as a CloudWatch embedded-metric log line: no API call, so the
  functions inside a VPC need no endpoint for it. Namespace EmbeddingIngest (POWERTOOLS_METRICS_NAMESPACE),
  dimension service, and workflow where a metric is one workflow's.
- Tracer: X-Ray subsegments for the handler and every boto3 call when the function traces actively.
  Powertools disables it outside Lambda (no LAMBDA_TASK_ROOT) and with POWERTOOLS_TRACE_DISABLED=true.
  (Powertools' tracer rests on the AWS X-Ray SDK, in maintenance mode since 2026-02-25; Powertools is
  moving it to OpenTelemetry.)
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from embedding_ingest.metrics import NAMESPACE, SERVICE, metrics_sink
from embedding_ingest.steps.logs import StepContextFilter

PACKAGE_LOGGER = "embedding_ingest"
_TRACER_LOGGER = "aws_lambda_powertools.tracing.tracer"

LambdaHandler = Callable[[Any, Any], dict]


class _CurrentStdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time (Lambda ships stdout to CloudWatch Logs)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


_handler = _CurrentStdoutHandler()
_handler.addFilter(StepContextFilter())
logger = Logger(service=SERVICE, logger_handler=_handler)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)
_cold = {"start": True}


def configure_lambda_logging(environ: Mapping[str, str] = os.environ) -> None:
    """Route the whole package's logging through the Powertools Logger (idempotent)."""
    level = str(environ.get("LOG_LEVEL", "INFO")).upper()
    level = level if level in logging.getLevelNamesMapping() else "INFO"
    logger.setLevel(level)
    logging.getLogger(PACKAGE_LOGGER)  # registered, so Powertools finds it among the top-level loggers
    copy_config_to_registered_loggers(source_logger=logger, include={PACKAGE_LOGGER}, log_level=level)
    # The tracer logs every failed invocation's traceback, unstructured, through the root logger; the
    # failure is already logged once as JSON ("step failed") and reported by the runtime.
    logging.getLogger(_TRACER_LOGGER).propagate = False


def _add_metric(name: str, value: float, workflow: str | None) -> None:
    if workflow is not None:
        metrics.add_dimension(name="workflow", value=workflow)
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def instrumented(function_name: str, handler: LambdaHandler) -> LambdaHandler:
    """`handler` with the invocation's keys on every log line, its metrics flushed at its end and its
    X-Ray subsegment (when tracing)."""

    @tracer.capture_lambda_handler(capture_response=False)
    def traced(event: Any, context: Any) -> dict:
        return handler(event, context)

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> dict:
        configure_lambda_logging()
        logger.append_keys(function_name=getattr(context, "function_name", None) or function_name,
                           function_request_id=getattr(context, "aws_request_id", None),
                           cold_start=_cold["start"])
        _cold["start"] = False
        try:
            with metrics_sink(_add_metric):
                return traced(event, context)
        finally:
            if metrics.metric_set:
                metrics.flush_metrics()
            metrics.clear_metrics()  # dimensions too: the next invocation may be another workflow's

    return run
