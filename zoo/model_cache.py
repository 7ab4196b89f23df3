"""Loaded models kept for reuse by a server (the demo): at most `size`, least recently used
dropped first, each loaded once even when many requests ask for it at the same time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoo.segmenter import Segmenter

Loader = Callable[[str, str], "Segmenter"]


def _load(name: str, backend: str) -> Segmenter:
    from zoo.loading import load

    return load(name, backend=backend)


class SegmenterCache:
    """Segmenters by (name, backend), loaded on demand by `loader(name, backend)` (default
    `zoo.load`). A slow load (a Hub download) blocks only the requests for that model."""

    def __init__(self, size: int, loader: Loader = _load) -> None:
        if size < 1:
            raise ValueError(f"SegmenterCache size must be >= 1, got {size}")
        self.size = size
        self._loader = loader
        self._models: OrderedDict[tuple[str, str], Segmenter] = OrderedDict()
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def _cached(self, key: tuple[str, str]) -> Segmenter | None:
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
            return self._models.get(key)

    def get(self, name: str, backend: str) -> Segmenter:
        """The Segmenter of (name, backend); the loader's errors pass through."""
        key = (name, backend)
        if (segmenter := self._cached(key)) is not None:
            return segmenter
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one load per model; the others wait for it, then hit the cache
            if (segmenter := self._cached(key)) is not None:
                return segmenter
            segmenter = self._loader(name, backend)
            with self._lock:
                self._models[key] = segmenter
                while len(self._models) > self.size:
                    self._models.popitem(last=False)
            return segmenter

    def names(self) -> list[tuple[str, str]]:
        """The (name, backend) keys held, least recently used first."""
        with self._lock:
            return list(self._models)
