"""Hugging Face Hub set-ups for tests: the client pointed at an endpoint with a fresh home,
and a Hub cache folder laid out as huggingface_hub writes it (for offline listings)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def point_hub_client(monkeypatch: pytest.MonkeyPatch, endpoint: str, home: Path) -> None:
    """Point `huggingface_hub` (environment and already-imported constants) at `endpoint`,
    with `home` as HF_HOME (the user's cache and token untouched), no token, Xet and telemetry
    off, online mode on."""
    from huggingface_hub import constants

    env = {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    patches = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
    }
    for key, value in patches.items():
        monkeypatch.setattr(constants, key, value, raising=False)


def fake_hub_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """`repo_id` at `main` in a Hub cache folder laid out as huggingface_hub writes it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for name, source in files.items():
        blob = repo / "blobs" / f"{name}-blob"
        shutil.copy(source, blob)
        (snapshot / name).symlink_to(blob)
