"""Exceptions of the runtime that callers may want to catch by type."""

from __future__ import annotations


class ModelNotAvailableError(RuntimeError):
    """A model cannot be obtained: not trained/published yet, offline and not cached, no such
    Hub repo or revision, or a local model directory lacking the files a backend needs.

    The message says which model, what is missing and what to do about it.
    """


class ModelFileError(ValueError):
    """A model file exists but cannot be used (damaged ONNX, unreadable weights, bytes that
    differ from the sha256 recorded in config.json)."""


class HubUnreachableError(ModelNotAvailableError):
    """The Hub cannot be reached (no network, server down, offline mode) and the files a load
    needs are not in the local Hub cache."""
