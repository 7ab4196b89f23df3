"""The steps of an export as the user sees them: a progress line per step (and per parity
shape and calibration image), and each step's duration for the export report."""

from __future__ import annotations

import time
from collections.abc import Callable

Progress = Callable[[str], None]  # receives lines such as "fp32 parity: shape 2 of 3 (...)"


def no_progress(message: str) -> None:
    """The default `Progress`: say nothing."""


class ExportSteps:
    """Announces steps to `progress` and times them: `start("ONNX export")` ...
    `done("onnx_export_s")` records the seconds since the previous `done`."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress: Progress = progress or no_progress
        self.timings: dict[str, float] = {}
        self._start = self._clock = time.perf_counter()

    def start(self, message: str) -> None:
        self.progress(message)

    def done(self, key: str) -> None:
        now = time.perf_counter()
        self.timings[key] = round(now - self._clock, 3)
        self._clock = now

    def total(self) -> dict[str, float]:
        """The timings with `total_s` (seconds since the export began) added."""
        return {**self.timings, "total_s": round(time.perf_counter() - self._start, 3)}
