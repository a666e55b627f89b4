"""What an execution did, in words and numbers: the `summary` every execution's output carries, and the
`last_error` a failed execution leaves on the batches it was working on.

Everything is read from what Step Functions itself reports (DescribeExecution's output, and for a
failed run GetExecutionHistory's events), so one function serves the local engine and AWS alike.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from embedding_ingest.snapshots.version_ids import short_version
from embedding_ingest.stores.ports import BatchLedger, ObjectStore

# PollResult.action -> why that batch gave nothing to publish this time.
_NOTHING_REASONS = {
    "wait": "still in progress at the provider",
    "batch_failed": "failed at the provider (their items go back to be resubmitted)",
    "nothing_to_ingest": "finished with no usable embeddings",
    "poll_failed": "could not be polled (see get-execution-history --failed-only)",
}


def _batches(count: int) -> str:
    return f"{count:,} {'batch' if count == 1 else 'batches'}"


def _output_of(described: dict[str, Any]) -> dict[str, Any]:
    try:
        output = json.loads(described.get("output") or "null")
    except json.JSONDecodeError:
        return {}
    return output if isinstance(output, dict) else {}


def _workflow_of(described: dict[str, Any]) -> str:
    """"line" or "word", from the state machine ARN (…:stateMachine:line-ingest…)."""
    machine = str(described.get("stateMachineArn") or "").rsplit(":", 1)[-1]
    return "word" if machine.startswith("word") else "line"


def _details(event: dict[str, Any]) -> dict[str, Any]:
    return next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})


def failed_state(events: Sequence[dict[str, Any]]) -> str | None:
    """The state a failed run failed in: the step whose Catch led to its `<State>Failed` Fail state, or
    else the last state entered. `events` are GetExecutionHistory events, oldest first."""
    entered = [_details(e).get("name") for e in events if e.get("type", "").endswith("StateEntered")]
    fail_states = [e for e in events if e.get("type") == "FailStateEntered"]
    if fail_states:
        name = str(_details(fail_states[-1]).get("name") or "")
        return name.removesuffix("Failed") or name
    return next((name for name in reversed(entered) if name), None)


def listed_batch_ids(events: Sequence[dict[str, Any]], objects: ObjectStore | None = None) -> list[str]:
    """The batch ids an execution's ListPendingBatches step chose (inline, or from its manifest)."""
    for event in events:
        if event.get("type") not in ("LambdaFunctionSucceeded", "TaskSucceeded"):
            continue
        try:
            result = json.loads(_details(event).get("output") or "null")
        except json.JSONDecodeError:
            continue
        if isinstance(result, dict) and "StatusCode" in result and "Payload" in result:
            result = result["Payload"]  # lambda:invoke: the function's result inside Invoke's response
        if not isinstance(result, dict) or "batch_indices" not in result:
            continue
        if result.get("pending_batches") is not None:
            return [ref["batch_id"] for ref in result["pending_batches"]]
        if objects is not None and result.get("manifest_s3_key"):
            manifest = objects.get_json(result["manifest_s3_key"])
            return [entry["batch_id"] for entry in manifest.get("batches", [])]
        return []
    return []


def summarize_execution(described: dict[str, Any], *, events: Sequence[dict[str, Any]] | None = None,
                        batches_still_active: int | None = None,
                        items_waiting: int | None = None, looping: bool = False,
                        kept_versions: Sequence[str] | None = None) -> dict[str, Any]:
    """The `summary` of one execution.

    `described` is a DescribeExecution body; `events` (GetExecutionHistory events, oldest first) are
    needed only for a run that did not succeed (its failed state, the batches it had listed);
    `batches_still_active` is the number of batches of this kind active after the run (None: counted
    from this run's own poll results, or for a run that did not finish, the batches it had listed);
    `items_waiting` the items of this kind not yet submitted (None: unknown), so that `next` never
    says "submit" when nothing waits; `looping`: the run is one of run_until_idle's, whose loop says
    itself what it does next (the message then does not advise running again or --until-idle);
    `kept_versions` the version ids of the workflow's database, so that the message shows the
    published version as people are shown versions (version_ids.short_version; None: whole).

    Keys: status, workflow, batches_listed, batches_polled ({provider status: count}),
    deltas_written, embeddings_in_deltas, embeddings_published, published_version, total_embeddings,
    batches_marked_complete, items_released, release_reasons ([{batch_id, released, problems,
    first_problem}]), batches_still_active, published (bool), mirror_error and prune_error (what
    failed after the publish without failing it, or None), message (one sentence), next (the one
    command to run next, or None), and for a failed run failed_state, error and cause."""
    status = str(described.get("status") or "")
    workflow = _workflow_of(described)
    output = _output_of(described) if status == "SUCCEEDED" else {}
    polls = [p for p in output.get("poll_results") or [] if isinstance(p, dict)]
    final = output.get("final_merge_result") or {}
    marked = output.get("mark_complete_result") or {}
    results = [p for p in polls if p.get("action") != "poll_failed"]
    waiting = sum(1 for p in polls if p.get("action") in ("wait", "poll_failed"))

    listed = len(polls) if polls else int(output.get("total_batches") or 0)
    if status not in ("SUCCEEDED", "RUNNING") and events:
        # No output to read: what it had listed is in ListPendingBatches' result; none was marked
        # complete (MarkComplete is the last step), so they all stay active.
        listed = len(listed_batch_ids(events))
        if batches_still_active is None:
            batches_still_active = listed
    summary: dict[str, Any] = {
        "status": status, "workflow": workflow,
        "batches_listed": listed,
        "batches_polled": dict(sorted(Counter(str(p.get("batch_status")) for p in results).items())),
        "batches_not_polled": len(polls) - len(results),
        "deltas_written": sum(1 for p in results if p.get("delta_key")),
        "embeddings_in_deltas": sum(int(p.get("embedding_count") or 0) for p in results),
        "embeddings_published": int(final.get("added_embeddings") or 0),
        # issue 10: published ids removed by deletions, and given a newer record (changed items)
        "embeddings_deleted": int(final.get("deleted_embeddings") or 0),
        "embeddings_replaced": int(final.get("replaced_embeddings") or 0),
        # issue 23: published records given new living metadata without re-embedding (no token)
        "metadata_updates_published": int(final.get("metadata_updated") or 0),
        "published_version": final.get("snapshot_version"),
        "total_embeddings": final.get("total_embeddings"),
        "batches_marked_complete": int(marked.get("batches_marked") or 0),
        "items_released": sum(int(p.get("released_count") or 0) for p in results),
        "release_reasons": [{"batch_id": p.get("batch_id"), "released": int(p.get("released_count") or 0),
                             "problems": int(p.get("problem_count") or 0),
                             "first_problem": p.get("first_problem")}
                            for p in results if p.get("released_count") or p.get("problem_count")],
        "batches_still_active": waiting if batches_still_active is None else batches_still_active,
        "published": bool(final.get("snapshot_version")),
        "mirror_error": final.get("mirror_error"), "prune_error": final.get("prune_error"),
    }
    if status == "ABORTED":  # stopped on purpose (Ctrl-C, StopExecution): no state failed
        summary.update(stopped_in=failed_state(events or []), error=described.get("error"),
                       cause=described.get("cause"))
    elif status not in ("SUCCEEDED", "RUNNING"):
        summary.update(failed_state=failed_state(events or []), error=described.get("error"),
                       cause=described.get("cause"))
    summary["message"], summary["next"] = _explain(summary, polls, described.get("name") or "",
                                                   items_waiting, looping, kept_versions)
    return summary


def _shown(version: str, kept: Sequence[str] | None) -> str:
    return version if kept is None else short_version(version, kept)


def _explain(s: dict[str, Any], polls: list[dict[str, Any]], name: str,
             items_waiting: int | None, looping: bool,
             kept: Sequence[str] | None) -> tuple[str, str | None]:
    kind, active = s["workflow"], s["batches_still_active"]
    again = f"embedding-ingest start-execution {kind} --until-idle"
    if s["status"] == "RUNNING":
        return "still running", f"embedding-ingest describe-execution {name}"
    if s["status"] == "ABORTED":  # stopped on purpose: nothing failed, a rerun resumes the batches
        where = f" in {s['stopped_in']}" if s.get("stopped_in") else ""
        listed = s["batches_listed"]
        held = ("nothing was lost" if not listed else
                "its 1 batch stays active and the next run resumes it" if listed == 1 else
                f"its {_batches(listed)} stay active and the next run resumes them")
        return f"aborted{where} before it finished; {held}", again
    if s["status"] != "SUCCEEDED":
        where = f" in {s['failed_state']}" if s.get("failed_state") else ""
        return (f"{s['status'].lower()}{where}: {s.get('error') or 'unknown error'}",
                f"embedding-ingest get-execution-history {name} --failed-only")
    if s["published"]:
        message = (f"published {s['embeddings_published']:,} embeddings as {kind}s version "
                   f"{_shown(s['published_version'], kept)} ({s['total_embeddings']:,} in all); "
                   f"{_batches(s['batches_marked_complete'])} marked complete")
        if s.get("embeddings_deleted") or s.get("embeddings_replaced"):
            message += (f"; {s.get('embeddings_replaced', 0):,} replaced by newer text, "
                        f"{s.get('embeddings_deleted', 0):,} deleted")
        if s.get("metadata_updates_published"):
            message += f"; {s['metadata_updates_published']:,} metadata updates (no tokens)"
        if s["items_released"]:
            message += f"; {s['items_released']:,} items released for resubmission"
        for problem in (s["mirror_error"], s["prune_error"]):
            message += f"; {problem}" if problem else ""
        if active:
            return message + f"; {_batches(active)} still active", again
        return message, None
    if not s["batches_listed"]:
        if active:  # listed nothing although batches are active: none accepted by the provider yet
            return (f"published nothing: {_batches(active)} active but none accepted by the provider "
                    f"yet; resume their submission", f"embedding-ingest submit {kind}")
        if items_waiting == 0:
            return (f"published nothing: no active {kind} batches to poll, and no {kind} is waiting to be "
                    "submitted"), None
        return (f"published nothing: no active {kind} batches to poll",
                f"embedding-ingest submit {kind}")
    by_action = Counter(str(p.get("action")) for p in polls)
    reasons = [f"{_batches(count)} {_NOTHING_REASONS[action]}"
               for action, count in sorted(by_action.items()) if action in _NOTHING_REASONS]
    reasons = reasons or ["no batch had new embeddings to publish"]
    if by_action.get("wait") or by_action.get("poll_failed"):
        later = "" if looping else "; run again later, or use --until-idle"  # the loop polls again itself
        return "published nothing: " + "; ".join(reasons) + later, again
    return "published nothing: " + "; ".join(reasons), (again if active else None)


def record_failure_on_batches(ledger: BatchLedger, described: dict[str, Any],
                              events: Sequence[dict[str, Any]],
                              objects: ObjectStore | None = None) -> list[str]:
    """Set `last_error` ("<execution> failed in <state>: <error>: <cause>") on every batch a failed
    execution had listed; returns their ids. Batches that no longer exist are skipped."""
    state = failed_state(events) or "an unknown state"
    cause = str(described.get("cause") or "")[:300]
    error = f"execution {described.get('name')} failed in {state}: {described.get('error')}"
    error += f": {cause}" if cause else ""
    marked = []
    for batch_id in listed_batch_ids(events, objects):
        if ledger.get_batch(batch_id) is not None:
            ledger.update_batch(batch_id, last_error=error)
            marked.append(batch_id)
    return marked


def aggregate(summaries: Sequence[dict[str, Any]], *, workflow: str, stopped_because: str,
              batches_still_active: int, kept_versions: Sequence[str] | None = None) -> dict[str, Any]:
    """One summary of executions run back to back: totals, versions published, why the loop stopped
    ("idle" | "max_runs" | "failed" | "stalled"), a message (versions shown as summarize_execution's)
    and the next command (or None)."""
    versions = [s["published_version"] for s in summaries if s.get("published_version")]
    totals = {key: sum(int(s.get(key) or 0) for s in summaries)
              for key in ("deltas_written", "embeddings_in_deltas", "embeddings_published",
                          "embeddings_deleted", "embeddings_replaced", "metadata_updates_published",
                          "batches_marked_complete",
                          "items_released")}
    statuses = Counter(s.get("status") for s in summaries)
    result: dict[str, Any] = {
        "workflow": workflow, "executions": len(summaries),
        "succeeded": statuses.get("SUCCEEDED", 0), "failed": len(summaries) - statuses.get("SUCCEEDED", 0),
        **totals, "published_versions": versions, "published_version": versions[-1] if versions else None,
        "batches_still_active": batches_still_active, "stopped_because": stopped_because,
        "release_reasons": [r for s in summaries for r in s.get("release_reasons", [])],
    }
    runs = f"{len(summaries)} {'execution' if len(summaries) == 1 else 'executions'}"
    deleted = f", {totals['embeddings_deleted']:,} deleted" if totals["embeddings_deleted"] else ""
    if totals["metadata_updates_published"]:  # issue 23
        deleted += f", {totals['metadata_updates_published']:,} metadata updates (no tokens)"
    published = (f"published {totals['embeddings_published']:,} embeddings{deleted} ({workflow}s version "
                 f"{_shown(versions[-1], kept_versions)})" if versions else "published nothing")
    if stopped_because in ("failed", "stalled"):
        last = summaries[-1]
        result["message"] = f"{runs}: {published}; the last one {last['message']}"
        result["next"] = last.get("next")
    elif stopped_because == "max_runs":
        result["message"] = (f"{runs} (--max-runs reached): {published}; "
                             f"{_batches(batches_still_active)} still active")
        result["next"] = f"embedding-ingest start-execution {workflow} --until-idle"
    else:
        result["message"] = f"{runs}: {published}; no {workflow} batch is active"
        result["next"] = None
    return result
