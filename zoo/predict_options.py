"""The settings of a prediction (`mode`, `max_side`, `batch_size`, `max_pixels`): their values,
defaults and checks, shared by `Segmenter` and `zoo.load`.

A setting left at `AUTO` takes the `Segmenter`'s value, and a `Segmenter` left at `AUTO` takes
the mode's default (`max_side`: `DEFAULT_MAX_SIDE` for `mode="whole"`, full size for "slide").
"""

from __future__ import annotations

import numbers
from typing import Any, Final

DEFAULT_MAX_SIDE: Final = 1024
MODES: Final = ("whole", "slide")


class Auto:
    """The type of `AUTO`: "the Segmenter's setting" / "the mode's default"."""

    def __repr__(self) -> str:
        return "AUTO"


AUTO: Final = Auto()


def check_mode(mode: str) -> str:
    """`mode` if it is one of `MODES`, else a ValueError listing them."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    return mode


def _count(value: Any) -> int | None:
    """`value` as an int if it is an integer (a Python or numpy one, not a bool), else None."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return None


def check_batch_size(batch_size: Any) -> int:
    """`batch_size` if it is a positive int, else a ValueError."""
    count = _count(batch_size)
    if count is None or count < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return count


def check_max_pixels(max_pixels: Any) -> int | None:
    """The image-size limit in pixels (None, or 0: no limit), or a ValueError."""
    if max_pixels is None:
        return None
    count = _count(max_pixels)
    if count is None or count < 0:
        raise ValueError(f"max_pixels must be a positive int or None, got {max_pixels!r}")
    return count or None


def resolve_max_side(max_side: Any, default: Any, mode: str) -> int | None:
    """The longer side to downscale to (None: full size): `max_side`, or where it is `AUTO`
    the `default` (the Segmenter's), or where that is `AUTO` too the mode's default."""
    if isinstance(max_side, Auto):
        max_side = default
    if isinstance(max_side, Auto):
        max_side = DEFAULT_MAX_SIDE if mode == "whole" else None
    if max_side is None:
        return None
    count = _count(max_side)
    if count is None or count < 0:
        raise ValueError(f"max_side must be a positive int or None, got {max_side!r}")
    return count or None
