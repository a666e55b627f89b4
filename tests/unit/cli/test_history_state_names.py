"""History tables name each event's state as the JSON does: a Map iteration by its Map state (not the
last state inside it), a Choice's exit by the Choice, a Lambda event by its Task; execution events by
none."""

from __future__ import annotations

from embedding_ingest.cli.execution_views import state_names


def _event(event_id: int, previous: int, kind: str, name: str | None = None) -> dict:
    event = {"id": event_id, "previousEventId": previous, "type": kind, "timestamp": 0.0}
    if name is not None:
        key = "mapIteration" + kind.removeprefix("MapIteration") if kind.startswith("MapIteration") else (
            "stateEntered" if kind.endswith("Entered") else "stateExited")
        event[f"{key[0].lower()}{key[1:]}EventDetails"] = {"name": name}
    return event


EVENTS = [
    _event(1, 0, "ExecutionStarted"),
    _event(2, 1, "ChoiceStateEntered", "Route"),
    _event(3, 2, "ChoiceStateExited", "Route"),
    _event(4, 3, "MapStateEntered", "Double"),
    _event(5, 4, "MapStateStarted"),
    _event(6, 5, "MapIterationStarted", "Double"),
    _event(7, 6, "TaskStateEntered", "Times2"),
    _event(8, 7, "LambdaFunctionScheduled"),
    _event(9, 8, "LambdaFunctionSucceeded"),
    _event(10, 9, "TaskStateExited", "Times2"),
    _event(11, 10, "MapIterationSucceeded", "Double"),
    _event(12, 11, "MapStateSucceeded"),
    _event(13, 12, "MapStateExited", "Double"),
    _event(14, 13, "ExecutionSucceeded"),
]


def test_each_event_is_named_by_the_state_the_json_names():
    names = state_names(EVENTS)

    assert [names.get(e["id"]) for e in EVENTS] == [
        None, "Route", "Route", "Double", "Double", "Double", "Times2", "Times2", "Times2", "Times2",
        "Double", "Double", "Double", None]
