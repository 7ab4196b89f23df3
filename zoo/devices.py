"""Device strings: the `device=` values every backend and `zoo.load` accept."""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")


def check_device(device: str) -> str:
    """Validate a device string: "auto", "cpu", "cuda" or "cuda:N"."""
    if device in DEVICES or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
