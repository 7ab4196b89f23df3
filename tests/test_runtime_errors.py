"""Hub unreachable: `zoo push` and `zoo.load` give one well-formed message, no traceback.

The "unreachable Hub" is a port on 127.0.0.1 that was just bound and released, so nothing
listens there and every connection is refused at once (no waiting on timeouts).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

import zoo
from tests.helpers_hub import point_hub_client
from tests.helpers_modeldir import shared_model_dir
from zoo.errors import HubUnreachableError, ModelNotAvailableError
from zoo.hub_cli import push_main

MODEL_ID = "lraspp_mbv3_cityscapes_cpg"


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def dead_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """huggingface_hub pointed at a closed port, with an empty cache and no token."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    point_hub_client(monkeypatch, endpoint, tmp_path / "hf-home")
    return endpoint


def test_push_without_a_server_is_one_line(
    dead_endpoint: str, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture
) -> None:
    model_dir = shared_model_dir(tmp_path_factory.getbasetemp(), num_classes=4)
    code = push_main([str(model_dir), "--repo", "someorg/somemodel"])
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"zoo push: error: cannot reach {dead_endpoint}: "), lines[0]
    assert "refused" in lines[0].lower()
    assert captured.out == ""


def test_load_of_a_registry_id_without_a_server_is_well_formed(dead_endpoint: str) -> None:
    with pytest.raises(ModelNotAvailableError) as info:
        zoo.load(MODEL_ID)
    message = str(info.value)
    assert message.startswith(f"{MODEL_ID}: ")
    assert dead_endpoint in message and "Connection refused" in message
    # Sentences end with a full stop before the next one starts: no "...refused) Registry".
    assert not re.search(r"\)\s+[A-Z]", message), message
    assert message.endswith("."), message
    # Unreachable is not "unpublished": no advice to train and publish the model.
    assert "not be trained" not in message and "published" not in message
    assert isinstance(info.value, HubUnreachableError)


def test_load_of_an_hf_hub_name_without_a_server(dead_endpoint: str) -> None:
    with pytest.raises(HubUnreachableError) as info:
        zoo.load("hf-hub:someorg/somemodel@v1")
    message = str(info.value)
    assert message.startswith("hf-hub:someorg/somemodel@v1: ")
    assert "someorg/somemodel@v1 is not in the local Hub cache" in message
    assert message.endswith(".")
