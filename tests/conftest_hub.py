"""Fixtures for tests against a local Hugging Face Hub (olah + the write front of hub_server).

`hub_server` (session): the server, started once. `hub` (function): the same server with
`huggingface_hub` pointed at it, a fresh `HF_HOME` (the user's cache and token stay untouched),
Xet and telemetry off and online mode on. olah is found via `$CPG_ZOO_OLAH`, PATH or
`.venv-olah/bin/olah-cli`; without it (or git) the tests skip, and fail under `CI=true`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports huggingface_hub: Xet uploads cannot go to a non-HF server.
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from hub_server import OLAH_ENV, HubServer, find_olah

from tests.helpers_hub import point_hub_client


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A running local Hub (olah + write front) on 127.0.0.1, for the whole session."""
    olah = find_olah()
    problem = None
    if olah is None:
        problem = (
            f"olah-cli not found (set {OLAH_ENV}, put it on PATH, or "
            "`python3.11 -m venv .venv-olah && .venv-olah/bin/pip install olah==0.5.4`)"
        )
    elif shutil.which("git") is None:
        problem = "git not found: the local Hub keeps its repos as git repositories"
    if problem is not None:
        if os.environ.get("CI", "").lower() in {"1", "true"}:
            pytest.fail(f"local Hub unavailable under CI: {problem}")
        pytest.skip(f"local Hub unavailable: {problem}")
    server = HubServer(tmp_path_factory.mktemp("hub"), olah).start()
    yield server
    server.stop()


@pytest.fixture
def hub(hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """`hub_server`, with huggingface_hub (env and already-imported constants) pointed at it."""
    point_hub_client(monkeypatch, hub_server.endpoint, tmp_path / "hf-home")
    return hub_server
