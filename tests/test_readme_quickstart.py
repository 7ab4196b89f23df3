"""The README's Quick start block, run as written (at tiny sizes) from an empty folder, so the
README and the code cannot drift apart."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bench.quickstart import quickstart_commands

# The sizes the README uses -> the sizes this test runs (each must occur in the block).
TINY = {"--train 64": "--train 4", "--val 16": "--val 2", "iterations=100": "iterations=2"}


@pytest.mark.slow
def test_readme_quickstart_runs_from_any_folder(tmp_path: Path) -> None:
    commands = quickstart_commands()
    text = " ".join(commands)
    assert all(size in text for size in TINY), "README sizes changed: update TINY"
    assert commands[0] == "source .venv/bin/activate"
    bin_dir = Path(sys.executable).parent
    for command in commands[1:]:
        for size, tiny in TINY.items():
            command = command.replace(size, tiny)
        argv = shlex.split(command)
        assert argv[0] == "zoo", f"not a zoo command (the block must run from any folder): {argv}"
        if argv[1] == "demo":  # a server: check it starts its model, not that it serves
            argv = [*argv, "--help"]
        quiet = ["--no-progress"] if argv[1] in ("train", "eval") else []
        done = subprocess.run(
            [str(bin_dir / "zoo"), *argv[1:], *quiet],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
    assert (tmp_path / "models" / "quick" / "model.onnx").is_file()
    assert (tmp_path / "models" / "quick" / "README.md").is_file()
    assert len(list((tmp_path / "predictions").rglob("*.png"))) >= 2
