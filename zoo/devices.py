"""Device strings: the `device=` values every backend and `zoo.load` accept; the CPU's name
for the records that say where a figure was measured."""

from __future__ import annotations

import platform
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda")


def check_device(device: str) -> str:
    """Validate a device string: "auto", "cpu", "cuda" or "cuda:N"."""
    if device in DEVICES or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo's "model name", else `platform.processor()`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
