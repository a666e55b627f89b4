"""Wait: pause for Seconds, until Timestamp, or for/until a value selected from the input
(SecondsPath, TimestampPath). The wait goes through the engine's clock, so under a virtual clock an
hour passes instantly while the history shows it; the execution's TimeoutSeconds cuts it short."""

from __future__ import annotations

from typing import Any

from asl_local.engine.core import COMMON_FIELDS, Branch, State
from asl_local.errors import STATES_RUNTIME, StatesFailure
from asl_local.intrinsics.functions import is_integer
from asl_local.limits import to_json
from asl_local.paths import select_for
from asl_local.timestamps import parse_timestamp

WAIT_FIELDS = ("Seconds", "Timestamp", "SecondsPath", "TimestampPath")


class WaitState(State):
    type_name = "Wait"
    fields = COMMON_FIELDS | set(WAIT_FIELDS)

    def run(self, branch: Branch, raw_input: Any, context: dict[str, Any]) -> tuple[str | None, Any]:
        data = self.effective_input(raw_input, context)
        branch.wait(self._seconds(data, context, branch.run.clock.now()))
        return self.next_state, self.state_output(data, context)

    def _seconds(self, data: Any, context: dict[str, Any], now: float) -> float:
        spec = self.spec
        if "Seconds" in spec:
            return float(spec["Seconds"])
        if "Timestamp" in spec:
            return max(0.0, (parse_timestamp(spec["Timestamp"]) or now) - now)
        if "SecondsPath" in spec:
            value = select_for(spec["SecondsPath"], data, context, state=self.name, field="SecondsPath")
            if not is_integer(value) or value < 0:
                path = spec["SecondsPath"]
                raise StatesFailure(STATES_RUNTIME, f"State '{self.name}': SecondsPath '{path}' selected "
                                                    f"{to_json(value)[:80]}, not a non-negative integer")
            return float(value)
        value = select_for(spec["TimestampPath"], data, context, state=self.name, field="TimestampPath")
        when = parse_timestamp(value)
        if when is None:
            raise StatesFailure(STATES_RUNTIME, f"State '{self.name}': TimestampPath "
                                                f"'{spec['TimestampPath']}' selected {to_json(value)[:80]}, "
                                                "not an RFC 3339 timestamp such as 2026-01-01T00:00:00Z")
        return max(0.0, when - now)
