"""The graph view's model: an ASL definition turned into nodes and edges, each state given a status from
the execution's history events (GetExecutionHistory shape, local or AWS alike).

Events are attributed to states by following `previousEventId` (each branch of a run - the top level,
one Map iteration, one Parallel branch - chains its own events): a `*StateEntered` event opens a visit
of its state, the events after it belong to that visit until its `*StateExited`. A state's status sums
its visits: failed > in progress > caught > aborted > succeeded; never visited = not entered. A visit
the execution's end cut short (an aborted execution, a Map iteration or Parallel branch stopped because
a sibling failed) is aborted, not failed: nothing went wrong in that state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SUCCEEDED, FAILED, CAUGHT, IN_PROGRESS, ABORTED, NOT_ENTERED = "succeeded", "failed", "caught", \
    "in_progress", "aborted", "not_entered"
STATUSES = (SUCCEEDED, FAILED, CAUGHT, IN_PROGRESS, ABORTED, NOT_ENTERED)
START, END = "__start__", "__end__"

# Events with these suffixes are a state's outcome (Task/LambdaFunction/Map/Parallel...): the iteration
# events of a Map are counted apart, and the execution's own events are nobody's outcome.
_NOT_OUTCOMES = frozenset({"MapIterationFailed", "MapIterationSucceeded", "MapIterationAborted",
                           "ExecutionSucceeded", "ExecutionAborted"})


def event_details(event: Mapping[str, Any]) -> dict[str, Any]:
    """The `...EventDetails` member of an AWS-shaped history event ({} when it has none)."""
    return next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})


@dataclass
class Visit:
    """One entry into a state (a state inside a Map is visited once per iteration)."""

    state: str
    entered: dict[str, Any]
    exited: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def outcome(self, execution_running: bool, state_type: str) -> str:
        failures = [e for e in self.events if _is_failure(e)]
        if self.exited is not None:
            # A failure after the last success that still led out of the state was caught by a Catch.
            successes = [e for e in self.events if _is_success(e)]
            if failures and (not successes or failures[-1]["id"] > successes[-1]["id"]):
                return CAUGHT
            return SUCCEEDED
        if state_type == "Fail" or failures:
            return FAILED
        # Never left and nothing failed in it: still running, or stopped by the execution's end.
        return IN_PROGRESS if execution_running else ABORTED

    def failure(self) -> dict[str, Any]:
        """error/cause of the latest failure event of this visit ({} if none)."""
        failed = [event_details(e) for e in self.events if _is_failure(e)]
        return {k: failed[-1].get(k) for k in ("error", "cause")} if failed else {}


def _is_failure(event: Mapping[str, Any]) -> bool:
    # *Aborted (MapStateAborted, ExecutionAborted...) is a stop from outside the state, not its failure.
    return event["type"].endswith(("Failed", "TimedOut")) and event["type"] not in _NOT_OUTCOMES


def _is_success(event: Mapping[str, Any]) -> bool:
    return event["type"].endswith("Succeeded") and event["type"] not in _NOT_OUTCOMES


def attribute_visits(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Visit]]:
    """Visits of every state that was entered, by state name, in the order they were entered."""
    visits: dict[str, list[Visit]] = {}
    entered: list[Visit] = []  # every visit, in the order entered
    owner: dict[int, Visit | None] = {}

    def open_visit(name: str) -> Visit | None:
        return next((v for v in reversed(visits.get(name, [])) if v.exited is None), None)

    for event in sorted(events, key=lambda e: e["id"]):
        event = dict(event)
        kind, details = event["type"], event_details(event)
        previous = owner.get(event.get("previousEventId") or 0)
        if kind.endswith("StateEntered"):
            visit = Visit(state=details.get("name", "?"), entered=event)
            visits.setdefault(visit.state, []).append(visit)
            entered.append(visit)
            owner[event["id"]] = visit
            continue
        if kind.endswith("StateExited"):
            name = details.get("name", "?")
            visit = previous if previous is not None and previous.state == name else open_visit(name)
            if visit is not None:
                visit.exited = event
            owner[event["id"]] = None
            continue
        if kind.startswith("MapIteration"):  # names its Map; may follow an inner state's exit
            previous = previous if previous is not None and previous.state == details.get("name") \
                else open_visit(details.get("name", "?"))
        container = next((c for c in ("Map", "Parallel") if kind.startswith(f"{c}State")), None)
        if container and (previous is None or previous.entered["type"] != f"{container}StateEntered"):
            # MapStateFailed, ParallelStateSucceeded...: name no state and may chain from the last event
            # of a branch or iteration; they belong to the innermost open Map/Parallel visit.
            previous = next((v for v in reversed(entered) if v.exited is None
                             and v.entered["type"] == f"{container}StateEntered"), previous)
        if previous is not None:
            previous.events.append(event)
        owner[event["id"]] = previous
    return visits


def state_of_events(visits: Mapping[str, list[Visit]]) -> dict[int, str]:
    """Event id -> the state it belongs to (the execution's own closing events belong to none)."""
    owners: dict[int, str] = {}
    for state, state_visits in visits.items():
        for visit in state_visits:
            for event in [visit.entered, *visit.events, *([visit.exited] if visit.exited else [])]:
                if not event["type"].startswith("Execution"):
                    owners[event["id"]] = state
    return owners


def _counts(state_visits: list[Visit], running: bool, state_type: str) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES[:-1], 0)
    for visit in state_visits:
        counts[visit.outcome(running, state_type)] += 1
    return counts


def _status(counts: Mapping[str, int]) -> str:
    for status in (FAILED, IN_PROGRESS, CAUGHT, ABORTED, SUCCEEDED):
        if counts.get(status):
            return status
    return NOT_ENTERED


def _choice_label(rule: Mapping[str, Any]) -> str:
    """A short text for a Choice rule: `$.x > 0`, `and(...)`, or the JSONata condition."""
    symbols = {"Equals": "==", "GreaterThan": ">", "GreaterThanEquals": ">=", "LessThan": "<",
               "LessThanEquals": "<=", "Matches": "matches", "IsPresent": "present", "IsNull": "is null",
               "IsNumeric": "numeric", "IsString": "string", "IsBoolean": "boolean",
               "IsTimestamp": "timestamp"}
    if "Condition" in rule:
        return str(rule["Condition"])
    for combinator in ("And", "Or"):
        if combinator in rule:
            return f" {combinator.lower()} ".join(_choice_label(r) for r in rule[combinator])
    if "Not" in rule:
        return f"not ({_choice_label(rule['Not'])})"
    for key, value in rule.items():
        if key in ("Variable", "Next", "Comment"):
            continue
        operator = next((symbol for suffix, symbol in symbols.items()
                         if key.removesuffix("Path").endswith(suffix)), key)
        return f"{rule.get('Variable', '')} {operator} {value}".strip()
    return "rule"


def _edges(name: str, spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    edges: list[dict[str, Any]] = []
    if spec.get("Type") == "Choice":
        for rule in spec.get("Choices", []):
            edges.append({"from": name, "to": rule.get("Next"), "label": _choice_label(rule),
                          "kind": "choice"})
        if spec.get("Default"):
            edges.append({"from": name, "to": spec["Default"], "label": "Default", "kind": "default"})
    for catcher in spec.get("Catch", []):
        edges.append({"from": name, "to": catcher.get("Next"),
                      "label": "Catch " + ", ".join(catcher.get("ErrorEquals", [])), "kind": "catch"})
    if spec.get("Next"):
        edges.append({"from": name, "to": spec["Next"], "label": "", "kind": "next"})
    # A Fail state ends the execution too, but drawn as a leaf it stays beside the state it catches for
    # instead of being pulled down to the End node (AWS's console draws it so as well).
    if spec.get("End") or spec.get("Type") == "Succeed":
        edges.append({"from": name, "to": END, "label": "", "kind": "end"})
    return edges


def _map_counts(state_visits: list[Visit]) -> dict[str, int]:
    events = [e for v in state_visits for e in v.events]
    started = [event_details(e).get("length") for e in events if e["type"] == "MapStateStarted"]
    return {"iterations": sum(n for n in started if isinstance(n, int)),
            "iterations_started": sum(e["type"] == "MapIterationStarted" for e in events),
            "iterations_succeeded": sum(e["type"] == "MapIterationSucceeded" for e in events),
            "iterations_failed": sum(e["type"] == "MapIterationFailed" for e in events),
            "iterations_aborted": sum(e["type"] == "MapIterationAborted" for e in events)}


def build_graph(program: Mapping[str, Any], visits: Mapping[str, list[Visit]], *,
                running: bool) -> dict[str, Any]:
    """Nodes and edges of `program` (a definition, a Map's ItemProcessor or a Parallel branch).

    Returns {"start_at", "nodes": [{"name", "type", "comment", "status", "counts", "map"?, "children"?,
    "branches"?}], "edges": [{"from", "to", "label", "kind"}]} with the pseudo-nodes START and END."""
    nodes: list[dict[str, Any]] = [{"name": START, "type": "Start", "status": NOT_ENTERED}]
    edges: list[dict[str, Any]] = [{"from": START, "to": program.get("StartAt"), "label": "", "kind": "next"}]
    for name, spec in (program.get("States") or {}).items():
        state_type = spec.get("Type", "?")
        state_visits = list(visits.get(name, []))
        counts = _counts(state_visits, running, state_type)
        node: dict[str, Any] = {"name": name, "type": state_type, "comment": spec.get("Comment", ""),
                                "status": _status(counts), "counts": counts, "visits": len(state_visits)}
        processor = spec.get("ItemProcessor") or spec.get("Iterator")
        if state_type == "Map" and processor:
            node["map"] = _map_counts(state_visits)
            node["children"] = build_graph(processor, visits, running=running)
        if state_type == "Parallel":
            node["branches"] = [build_graph(branch, visits, running=running)
                                for branch in spec.get("Branches", [])]
        nodes.append(node)
        edges.extend(_edges(name, spec))
    reached = any(n["status"] != NOT_ENTERED for n in nodes)
    nodes[0]["status"] = SUCCEEDED if reached else NOT_ENTERED
    ends = [e for e in edges if e["to"] == END]
    ended = [n for n in nodes if any(e["from"] == n["name"] for e in ends) and n["status"] == SUCCEEDED]
    nodes.append({"name": END, "type": "End", "status": SUCCEEDED if ended else NOT_ENTERED})
    return {"start_at": program.get("StartAt"), "nodes": nodes, "edges": edges}


def execution_graph(definition: Mapping[str, Any] | None, events: Iterable[Mapping[str, Any]], *,
                    running: bool) -> dict[str, Any]:
    """The whole graph of one execution; `definition` None gives an empty graph (definition unknown)."""
    if not definition:
        return {"start_at": None, "nodes": [], "edges": []}
    return build_graph(definition, attribute_visits(events), running=running)


def state_detail(name: str, visits: Mapping[str, list[Visit]], *, running: bool, state_type: str = "",
                 max_events: int = 200) -> dict[str, Any]:
    """What selecting a state shows: input, output, error and cause of its most telling visit (the last
    failed one, else the last one), how many visits there were, and its events (at most `max_events`)."""
    state_visits = list(visits.get(name, []))
    if not state_visits:
        return {"name": name, "status": NOT_ENTERED, "visits": 0, "events": []}
    outcomes = [v.outcome(running, state_type) for v in state_visits]
    index = max((i for i, o in enumerate(outcomes) if o in (FAILED, CAUGHT)), default=len(state_visits) - 1)
    shown = state_visits[index]
    failure = shown.failure()  # a Fail state's comes from the ExecutionFailed event that follows it
    events = [e for v in state_visits for e in [v.entered, *v.events, *([v.exited] if v.exited else [])]]
    return {"name": name, "status": outcomes[index], "visit": index + 1, "visits": len(state_visits),
            "counts": dict.fromkeys(STATUSES[:-1], 0) | {o: outcomes.count(o) for o in set(outcomes)},
            "input": event_details(shown.entered).get("input"),
            "output": event_details(shown.exited).get("output") if shown.exited else None,
            "error": failure.get("error"), "cause": failure.get("cause"),
            "events": sorted(events, key=lambda e: e["id"])[:max_events],
            "events_total": len(events)}
