"""Every `zoo` subcommand reports a user error as one line `zoo <command>: error: <why>`, and
`zoo --version` prints the version pyproject.toml gives the distribution."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from bench.app_server import free_port
from zoo.cli import main as zoo_main

ROOT = Path(__file__).resolve().parents[1]


def _one_error_line(err: str, prog: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for flag in ("--version", "-V"):
        assert zoo_main([flag]) == 0
        assert capsys.readouterr().out == f"cpg-zoo {expected}\n"


def test_card_of_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert zoo_main(["card", str(tmp_path / "missing")]) == 2
    assert "missing" in _one_error_line(capsys.readouterr().err, "zoo card")


def test_list_without_match(capsys: pytest.CaptureFixture[str]) -> None:
    assert zoo_main(["list", "no-such-model-*"]) == 1
    assert "no-such-model-*" in _one_error_line(capsys.readouterr().err, "zoo list")


def test_predict_with_a_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"")  # never read: the model fails first
    code = zoo_main(["predict", str(image), "--model", str(tmp_path / "no_model"), "--quiet"])
    assert code == 2
    line = _one_error_line(capsys.readouterr().err, "zoo predict")
    assert "cannot load model" in line and "no_model" in line


def test_predict_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert zoo_main(["predict", str(tmp_path), "--batch-size", "0"]) == 2
    assert "--batch-size" in _one_error_line(capsys.readouterr().err, "zoo predict")


def test_export_of_a_damaged_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    pytest.importorskip("torch")
    (tmp_path / "bad.pt").write_bytes(b"nope")
    argv = ["export", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "m"), "--quiet"]
    assert zoo_main(argv) == 1
    assert "bad.pt" in _one_error_line(capsys.readouterr().err, "zoo export")
    assert not (tmp_path / "m").exists()


def test_demo_with_a_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("gradio")
    assert zoo_main(["demo", "--model", str(tmp_path / "missing"), "--port", str(free_port())]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the server log's line
    assert last.startswith("zoo demo: error: cannot load the model: ") and "missing" in last


def test_a_reader_that_leaves_early_is_no_error(tmp_path: Path) -> None:
    """`zoo data check DATA | head`: stdout closes early; no error line, SIGPIPE's status."""
    import subprocess
    import sys

    from tests.test_folder_dataset import make_folder_dataset

    root = make_folder_dataset(tmp_path / "d")
    command = [sys.executable, "-m", "zoo.cli", "data", "check", str(root)]
    # buffered stdout (a shell's default for a pipe): the write fails in the exit flush
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader leaves before anything is written
    err = process.stderr.read().decode()
    assert (process.wait(timeout=120), err) == (141, "")
