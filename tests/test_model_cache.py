"""`zoo.model_cache.SegmenterCache`: the demo's loaded models, least recently used dropped."""

from __future__ import annotations

import pytest

from zoo.model_cache import SegmenterCache


class Loader:
    """Stands in for `zoo.load`: returns a fresh object per call and records the calls."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.failing = failing or set()

    def __call__(self, name: str, backend: str) -> object:
        self.calls.append((name, backend))
        if name in self.failing:
            raise ValueError(f"unknown model {name!r}")
        return object()


def test_keeps_the_most_recently_used_models():
    loader = Loader()
    cache = SegmenterCache(2, loader)
    a = cache.get("a", "onnx")
    cache.get("b", "onnx")
    assert cache.get("a", "onnx") is a  # a hit, and now the most recent
    cache.get("c", "onnx")  # drops b, the least recently used
    assert cache.names() == [("a", "onnx"), ("c", "onnx")]
    cache.get("b", "onnx")
    assert loader.calls == [("a", "onnx"), ("b", "onnx"), ("c", "onnx"), ("b", "onnx")]


def test_backends_are_separate_entries():
    loader = Loader()
    cache = SegmenterCache(3, loader)
    assert cache.get("a", "onnx") is not cache.get("a", "torch")
    assert loader.calls == [("a", "onnx"), ("a", "torch")]


def test_a_failed_load_is_not_cached():
    loader = Loader(failing={"bad"})
    cache = SegmenterCache(2, loader)
    for _ in range(2):
        with pytest.raises(ValueError, match="unknown model 'bad'"):
            cache.get("bad", "onnx")
    assert loader.calls == [("bad", "onnx")] * 2 and cache.names() == []


def test_size_must_be_positive():
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        SegmenterCache(0)
