"""Child of bench/functions.py: run ONE step with the registry's real handler on the real event, in a
process of its own, then write its result and its own peak RSS (VmHWM, not getrusage: Linux carries
ru_maxrss across exec) as JSON.

    python bench/function_child.py FUNCTION EVENT.json SETTINGS.json OUT.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peaks import peak_rss_kib  # noqa: E402


def main(name: str, event_path: str, settings_path: str, out_path: str) -> None:
    started = time.perf_counter()
    from asl_local.errors import error_name_of
    from embedding_ingest.backends import build_step_context
    from embedding_ingest.config import Settings
    from embedding_ingest.steps.registry import handler_for

    settings = Settings.model_validate_json(Path(settings_path).read_text())
    event = json.loads(Path(event_path).read_text())
    try:
        result: dict = {"ok": handler_for(name)(event, build_step_context(settings))}
    except Exception as exc:  # reported to the parent, which raises it into the engine by name
        result = {"error": [error_name_of(exc), str(exc)]}
    result.update(peak_rss_mb=peak_rss_kib() / 1024, seconds=time.perf_counter() - started)
    Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:5])
