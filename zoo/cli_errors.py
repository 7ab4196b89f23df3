"""How every `zoo` subcommand reports a user error: one line, `zoo <command>: error: <why>`.

Errors that mean bad input, settings or environment (a missing file, a wrong value, an
unreachable Hub, a missing extra) are `USER_ERRORS`: the CLIs print them with `fail` instead
of a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from zoo.errors import ModelNotAvailableError

USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # includes ModelFileError and the data/config errors
    OSError,  # missing files, permissions, connection errors
    FloatingPointError,  # a diverged training run
    ModelNotAvailableError,
    ImportError,  # a missing extra; the message says which `pip install` to run
)


def error_line(error: BaseException | str) -> str:
    """The message of `error` as one line. For an error re-raised by a DataLoader worker, its
    last line (the worker's traceback says nothing more to a user)."""
    text = str(error).strip() or type(error).__name__
    if "Original Traceback" in text:
        return text.splitlines()[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines)


def reader_left() -> int:
    """After a BrokenPipeError on stdout (`zoo ... | head`: the reader left): send the rest of
    stdout to /dev/null, so the exit flush raises nothing, and return the exit status 141
    (SIGPIPE's)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141


def fail(prog: str, error: BaseException | str, code: int = 1) -> int:
    """Print `prog: error: <one line>` to stderr and return the exit status `code`; a
    BrokenPipeError (the reader of stdout left) prints nothing and returns `reader_left()`."""
    if isinstance(error, BrokenPipeError):
        return reader_left()
    print(f"{prog}: error: {error_line(error)}", file=sys.stderr)
    return code


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """argparse `type=` for an int in [low, high] (no upper bound where `high` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: use {low}-{high}")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def only_with(needed: str, options: dict[str, Any]) -> str | None:
    """ "--a and --b go only with NEEDED" for the options of `options` (flag: value) that were
    given (neither None nor False), or None when none was."""
    given = [name for name, value in options.items() if value is not None and value is not False]
    if not given:
        return None
    return f"{' and '.join(given)} {'goes' if len(given) == 1 else 'go'} only with {needed}"
