"""Running by itself: submit new items, then run each workflow until idle, then wait; again.

The same submission round serves the local loop (`embedding-ingest schedule`) and the AWS submit
function (aws/functions/handlers.py `submit`, on its own EventBridge Scheduler schedule). The loop
stops between steps: a stop request (SIGINT/SIGTERM) lets the current submission or execution
finish, so no lock is left held and no execution is left RUNNING, and then it returns.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from embedding_ingest.config import Settings
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.providers.base import BatchProvider
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import ItemKind

if TYPE_CHECKING:  # the AWS submit function imports this module: it needs no run loop
    from embedding_ingest.pipeline.run import RunLoop

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, None: 1}


def parse_duration(text: str) -> float:
    """"30s" / "5m" / "1h" / "90" (seconds) -> seconds. Raises InvalidInputError for anything else or 0."""
    match = _DURATION.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise InvalidInputError(f"duration {text!r}: expected a positive number with s, m or h "
                                "(e.g. 30s, 5m, 1h)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_kinds(text: str | Sequence[str]) -> list[ItemKind]:
    """"line,word" or ["line", "word"] -> [ItemKind.LINE, ItemKind.WORD] (order kept, no repeats)."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if str(n).strip()]
    kinds: list[ItemKind] = []
    for name in names:
        try:
            kind = ItemKind(name)
        except ValueError:
            raise InvalidInputError(f"kind {name!r}: expected line or word") from None
        if kind not in kinds:
            kinds.append(kind)
    if not kinds:
        raise InvalidInputError("kinds: name at least one of line, word")
    return kinds


def submit_round(kinds: Sequence[ItemKind], ledger: Ledger, provider: BatchProvider, settings: Settings,
                 *, should_stop: Callable[[], bool] = lambda: False) -> dict[str, dict[str, int]]:
    """Submit every un-embedded item of each kind through submission.submit (its budgets and per-batch
    caps apply). Returns {kind: {"batches", "items", "refused", "waiting_for_budget"}} (the last: items
    left NONE because the provider's enqueued-token/request budget is full); a stop request skips kinds
    not begun."""
    from embedding_ingest.submission.submit import submit

    done: dict[str, dict[str, int]] = {}
    for kind in kinds:
        if should_stop():
            break
        report = submit(kind, ledger, provider, settings=settings)
        done[kind.value] = {"batches": len(report.batches), "items": report.items_submitted,
                            "refused": len(report.refused),
                            "waiting_for_budget": report.items_waiting_for_budget}
    return done


class StopRequest:
    """Set from a signal handler; read between steps. `wait` sleeps until the timeout or a stop."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        self.reason = self.reason or reason
        self._event.set()

    def __call__(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)


def describe_round(round_number: int, submitted: dict[str, dict[str, int]] | None,
                   runs: dict[str, list[Any]]) -> str:
    """One log line for a round: what was submitted and what each workflow's executions did."""
    parts = [f"round {round_number}:"]
    if submitted is None:
        parts.append("submit off;")
    else:
        sent = [f"{v['items']} {k}s in {v['batches']} batch{'es' if v['batches'] != 1 else ''}"
                + (f" ({v['refused']} refused)" if v["refused"] else "")
                + (f" ({v['waiting_for_budget']} waiting for budget)" if v["waiting_for_budget"] else "")
                for k, v in submitted.items() if v["items"] or v["refused"] or v["waiting_for_budget"]]
        parts.append(f"submitted {', '.join(sent) or 'nothing'};")
    for kind, executions in runs.items():
        if not executions:
            parts.append(f"{kind}: idle;")
            continue
        statuses = Counter(str(e.get("status")) for e in executions)
        summaries = [e.get("summary") or {} for e in executions]
        published = sum(int(s.get("embeddings_published") or 0) for s in summaries)
        deleted = sum(int(s.get("embeddings_deleted") or 0) for s in summaries)
        active = summaries[-1].get("batches_still_active") if summaries else None
        parts.append(f"{kind}: {len(executions)} execution{'s' if len(executions) != 1 else ''} ("
                     + (", ".join(f"{n} {status}" for status, n in sorted(statuses.items())) or "none")
                     + f"), {published} embeddings published"
                     + (f", {deleted} deleted" if deleted else "")
                     + (f", {active} batches still active" if active else "") + ";")
    return " ".join(parts).rstrip(";")


class _Stopped(Exception):  # noqa: N818 - control flow: a stop request between executions
    pass


def run_kind_until_idle(loop: RunLoop, kind: ItemKind, stop: StopRequest) -> list[Any]:
    """RunLoop.run_until_idle for one kind, cut short between executions by a stop request.
    Returns the DescribeExecution bodies of the executions that ran (each ended: none left RUNNING)."""
    ran: list[Any] = []

    def on_execution(described: dict[str, Any]) -> None:
        ran.append(described)
        if stop():
            raise _Stopped

    def interruptible_sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise _Stopped

    with contextlib.suppress(_Stopped):
        loop.run_until_idle(kind, on_execution=on_execution, sleep=interruptible_sleep)
    return ran


def run_schedule(loop: RunLoop, provider: BatchProvider | None, *, every: float, kinds: Sequence[ItemKind],
                 submit: bool, stop: StopRequest, log: Callable[[str], None],
                 max_rounds: int | None = None) -> int:
    """Rounds of: submit (when `submit`, through `provider` into the loop's ledger), then each kind's
    workflow until idle on `loop`; `log` gets one line per round; then wait `every` seconds. Returns the
    number of rounds run when `stop` is set (checked between steps, and it cuts the wait short) or
    after `max_rounds`. A transient error ends the round with a log line and the loop goes on; other
    errors propagate."""
    from embedding_ingest.exceptions import TransientError

    rounds = 0
    while not stop() and (max_rounds is None or rounds < max_rounds):
        rounds += 1
        submitted: dict[str, dict[str, int]] | None = None
        runs: dict[str, list[Any]] = {}
        try:
            if submit and provider is not None:
                submitted = submit_round(kinds, loop.ports.ledger, provider, loop.ports.settings,
                                         should_stop=stop)
            for kind in kinds:
                if stop():
                    break
                # Already idle: nothing to poll or publish, so no empty execution clutters the history.
                runs[kind.value] = run_kind_until_idle(loop, kind, stop) if loop.active_batches(kind) else []
            log(describe_round(rounds, submitted, runs))
        except TransientError as exc:
            log(f"round {rounds}: stopped by a transient error, trying again next round: "
                f"{type(exc).__name__}: {exc}")
        if max_rounds is not None and rounds >= max_rounds:
            break
        stop.wait(every)
    return rounds
