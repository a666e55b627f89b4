"""Payload templates (`"key.$": path` or `"key.$": "States.Format(...)"` in Parameters, ResultSelector
and ItemSelector): the one place where paths and intrinsic functions meet. Intrinsics read paths,
templates read both, paths read neither, so no two of them import each other."""

from __future__ import annotations

from typing import Any

from asl_local.intrinsics.parser import evaluate_intrinsic
from asl_local.paths import select_for


def evaluate_template(template: Any, data: Any, context: dict[str, Any], *, state: str,
                      field: str, rng: Any = None) -> Any:
    """Build a payload template: keys ending in ".$" take the value their path/intrinsic selects."""
    if isinstance(template, dict):
        built: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                name = key[:-2]
                where = f"{field}.{key}"
                if value.startswith("States."):
                    built[name] = evaluate_intrinsic(value, data, context, state=state, field=where,
                                                     rng=rng)
                else:
                    built[name] = select_for(value, data, context, state=state, field=key)
            else:
                built[key] = evaluate_template(value, data, context, state=state, field=f"{field}.{key}",
                                               rng=rng)
        return built
    if isinstance(template, list):
        return [evaluate_template(v, data, context, state=state, field=field, rng=rng) for v in template]
    return template
