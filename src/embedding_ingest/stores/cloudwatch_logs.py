"""FilterLogEvents against CloudWatch Logs (`logs filter-log-events --backend aws`), answered in the
shape the local log store answers (stores/log_store.py) and the AWS CLI prints: the events of every
page up to `max_items`, with a `NextToken` for `--starting-token` when more remain (botocore's
paginator, as the AWS CLI pages)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from embedding_ingest.exceptions import InvalidInputError, TransientError
from embedding_ingest.stores.log_filter import InvalidFilterPatternError
from embedding_ingest.stores.log_store import ResourceNotFoundException


class CloudWatchLogsError(TransientError):
    """CloudWatch Logs failed (network, throttling, service error)."""


def _known_groups(client: Any, group: str) -> list[str]:
    prefix = "/aws/lambda/" if group.startswith("/aws/lambda/") else group[:1]
    try:
        pages = client.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix)
        return [g["logGroupName"] for page in pages for g in page.get("logGroups", [])]
    except (ClientError, BotoCoreError):
        return []


def filter_log_events(client: Any, group: str, *, filter_pattern: str | None = None,
                      start_time: int | None = None, end_time: int | None = None,
                      stream_names: Sequence[str] | None = None, stream_prefix: str | None = None,
                      max_items: int | None = None, starting_token: str | None = None,
                      page_size: int | None = None) -> dict[str, Any]:
    """FilterLogEvents over every page (at most `max_items` events). Raises ResourceNotFoundException
    (naming the closest group there is), InvalidFilterPatternError, CloudWatchLogsError."""
    arguments: dict[str, Any] = {"logGroupName": group}
    for key, value in (("filterPattern", filter_pattern), ("startTime", start_time), ("endTime", end_time),
                       ("logStreamNames", list(stream_names or []) or None),
                       ("logStreamNamePrefix", stream_prefix)):
        if value is not None:
            arguments[key] = value
    paging = {key: value for key, value in (("MaxItems", max_items), ("StartingToken", starting_token),
                                            ("PageSize", page_size)) if value is not None}
    try:
        pages = client.get_paginator("filter_log_events").paginate(**arguments, PaginationConfig=paging)
        result = pages.build_full_result()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise ResourceNotFoundException(group, _known_groups(client, group)) from exc
        if code == "InvalidParameterException":
            raise InvalidFilterPatternError(filter_pattern or "", str(exc)) from exc
        raise CloudWatchLogsError(f"CloudWatch Logs FilterLogEvents failed: {exc}") from exc
    except BotoCoreError as exc:
        raise CloudWatchLogsError(f"CloudWatch Logs FilterLogEvents failed: {exc}") from exc
    except ValueError as exc:  # a StartingToken botocore cannot read
        raise InvalidInputError(f"--starting-token {starting_token!r}: {exc}") from exc
    shaped: dict[str, Any] = {"events": result.get("events", []),
                              "searchedLogStreams": result.get("searchedLogStreams", [])}
    if result.get("NextToken"):
        shaped["NextToken"] = result["NextToken"]
    return shaped
