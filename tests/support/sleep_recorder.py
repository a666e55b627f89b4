"""A stand-in for time.sleep where a test checks the waits asked for, not the time they take."""

from __future__ import annotations


class SleepRecorder:
    """Records each requested delay, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
