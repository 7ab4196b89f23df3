"""`training.checkpoints.read_checkpoint` on files that are not checkpoints: the error says
what the file is and what was expected."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import torch

from training.checkpoints import read_checkpoint

EXPECTED = "expected a checkpoint that `zoo train` writes (RUN_DIR/last.pt or best.pt)"


def _saved(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _refused(path: Path, *fragments: str) -> str:
    with pytest.raises(ValueError) as info:
        read_checkpoint(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert message.endswith(EXPECTED), message
    return message


def test_empty_and_cut_short_files(tmp_path: Path) -> None:
    empty = tmp_path / "last.pt"
    empty.write_bytes(b"")
    _refused(empty, f"{empty} is not a training checkpoint: it is an empty file (0 bytes)")
    whole = _saved({"model": {"w": torch.zeros(1000)}, "config": {}})
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole[: len(whole) // 2])
    _refused(
        cut,
        f"{cut} is not a training checkpoint: it is an incomplete zip archive of "
        f"{len(whole) // 2} bytes: a checkpoint cut short",
    )


def test_model_directory_files_and_other_files(tmp_path: Path) -> None:
    model_dir = tmp_path / "models" / "mine"
    model_dir.mkdir(parents=True)
    onnx = model_dir / "model.onnx"
    data = b"\x08\x07\x12\x07pytorch" * 10  # protobuf-like bytes, not a pickle
    onnx.write_bytes(data)
    message = _refused(
        onnx,
        f"{onnx} is not a training checkpoint: it is a {len(data)}-byte file that is no "
        "torch.save archive (no zip header)",
        f"model.onnx is a model-directory file: zoo eval and init= take the directory {model_dir}",
    )
    assert "objects other than tensors" not in message  # what it said before: wrong
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    message = _refused(notes, "it is a 5-byte file that is no torch.save archive")
    assert "model-directory file" not in message
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as file:
        file.writestr("a.png", b"x")
        file.writestr("b.png", b"y")
    _refused(archive, "it is a zip archive of 2 file(s) without data.pkl")


def test_a_torch_file_without_the_keys_lists_a_few_of_its_own(tmp_path: Path) -> None:
    state_dict = tmp_path / "weights.pt"
    state_dict.write_bytes(_saved({f"layer{i}.weight": torch.zeros(1) for i in range(300)}))
    message = _refused(
        state_dict,
        f"checkpoint {state_dict} lacks the keys model, config (its keys: layer0.weight, "
        "layer1.weight, layer2.weight, layer3.weight, layer4.weight and 295 more)",
    )
    assert "layer5.weight" not in message
    listed = tmp_path / "list.pt"
    listed.write_bytes(_saved([1, 2]))
    _refused(listed, f"checkpoint {listed} lacks the keys model, config (it holds a list)")


def test_a_checkpoint_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.pt"
    path.write_bytes(_saved({"model": {"w": torch.ones(2)}, "config": {"arch": "x"}}))
    checkpoint = read_checkpoint(path)
    assert torch.equal(checkpoint["model"]["w"], torch.ones(2))
    assert checkpoint["config"] == {"arch": "x"}
