"""How many crash injection points each crash suite enumerated and covered, printed at session end. A
skipped case is a point its run did not reach where the history said why (scenarios.run_to_crash):
counted apart, since it tested nothing."""

from __future__ import annotations

_CACHE_PREFIX = "reliability/injection_points/"


def record_injection_points(config, test_function: str, count: int, detail: str) -> None:
    """Called at collection by each crash suite (xdist workers and the controller share the cache)."""
    cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider: then nothing is reported
    if cache is not None:
        cache.set(_CACHE_PREFIX + test_function, {"count": count, "detail": detail})


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    cache = getattr(config, "cache", None)
    if cache is None:
        return
    lines = []
    for test_function in ("test_crash_at", "test_crash_on_aws_at", "test_crash_while_syncing",
                          "test_crash_in_submission"):
        recorded = cache.get(_CACHE_PREFIX + test_function, None)
        outcomes = {outcome: [r for r in terminalreporter.stats.get(outcome, [])
                              if getattr(r, "when", "call") == "call"
                              and f"::{test_function}[" in getattr(r, "nodeid", "")]
                    for outcome in ("passed", "failed", "skipped")}
        if recorded is None or not any(outcomes.values()):
            continue
        lines.append(f"{test_function}: {recorded['count']} injection points enumerated "
                     f"({recorded['detail']}); {len(outcomes['passed'])} passed, "
                     f"{len(outcomes['failed'])} failed"
                     + (f", {len(outcomes['skipped'])} not reached (skipped)" if outcomes["skipped"] else ""))
    if lines:
        terminalreporter.write_sep("-", "reliability: crash injection points covered")
        for line in lines:
            terminalreporter.write_line(line)
