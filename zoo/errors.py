"""Exceptions of the runtime that callers may want to catch by type."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


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


class BatchPredictionError(ValueError):
    """Some images of a list could not be segmented.

    `results[i]` is the result (mask or probabilities) of image i, or None where it failed;
    `errors` maps the indices of the failed images to their exceptions.
    """

    def __init__(self, results: list[np.ndarray | None], errors: dict[int, Exception]) -> None:
        self.results = results
        self.errors = errors
        details = "; ".join(f"[{index}] {error}" for index, error in errors.items())
        super().__init__(
            f"{len(errors)} of {len(results)} image(s) could not be segmented: {details}. "
            "The results of the others are in this error's .results (None where one failed)."
        )
