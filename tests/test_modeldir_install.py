"""A model directory is replaced whole: a reader sees the old one or the new one, never a mix,
and the next export cleans up what a killed one left.

Kills are real SIGKILLs of a child process, sent from a monkeypatched step of that process.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from helpers_process import run_process

import zoo
from tests.helpers_torch import one_torch_thread  # noqa: F401 (autouse fixture)
from zoo.fileio import file_sha256
from zoo.loading import resolve_model_dir
from zoo.modelfiles import CARD_NAME, CONFIG_NAME, EVAL_NAME, ONNX_NAME, WEIGHTS_NAME

SHAPES = ((1, 3, 49, 75),)
ZOO_ROOT = str(Path(zoo.__file__).resolve().parents[1])  # the tree under test, for children


def _child(script: str, *args: str) -> int:
    """Run `script` in a fresh interpreter (`sys.argv[1:]` = args); return its exit status."""
    env = {**os.environ, "PYTHONPATH": ZOO_ROOT}
    done = run_process([sys.executable, "-c", textwrap.dedent(script), *args], env=env)
    assert done.returncode in (0, -9), done.stderr[-2000:]
    return done.returncode


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def _hidden(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if path.name.startswith("."))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from bench.synthetic import random_checkpoint

    folder = tmp_path_factory.mktemp("checkpoints")
    return (
        random_checkpoint("lraspp_mbv3", folder / "a.pt", seed=0),
        random_checkpoint("lraspp_mbv3", folder / "b.pt", seed=1),
    )


@pytest.fixture(scope="module")
def exported_a(checkpoints: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """checkpoint A exported, with a user's file and a model card beside it."""
    from export import export_model

    out = export_model(checkpoints[0], tmp_path_factory.mktemp("a") / "m", shapes=SHAPES)
    (out / "notes.txt").write_text("kept across exports")
    (out / CARD_NAME).write_text("# card of the weights of checkpoint A\n")
    return out


@pytest.fixture
def model_dir(exported_a: Path, tmp_path: Path) -> Path:
    """A private copy of `exported_a` at tmp_path/models/m."""
    return Path(shutil.copytree(exported_a, tmp_path / "models" / "m"))


def _state(directory: Path, old: dict[str, bytes], new_checkpoint: Path) -> str:
    """'old' (byte-identical to `old`), 'new' (files of the new export throughout) or a
    description of the mix."""
    files = _files(directory)
    if files == old:
        return "old"
    report = json.loads(files[EVAL_NAME])["export"]
    model_files = [WEIGHTS_NAME, ONNX_NAME]
    new_weights = [name for name in model_files if files.get(name) != old.get(name)]
    new_report = report["checkpoint_sha256"] == file_sha256(new_checkpoint)
    if new_weights == model_files and new_report:
        zoo.load(directory, backend="torch", device="cpu")  # records (if any) match the files
        return "new"
    return f"mixed: new model files {new_weights}, eval.json of the new checkpoint {new_report}"


EXPORT_KILLED_AT_A_MOVE = """
    import os, signal, sys
    import torch
    from export import export_model

    checkpoint, out, when, count = sys.argv[1], os.path.abspath(sys.argv[2]), *sys.argv[3:]
    moves = 0

    def killing(move):
        def killing_move(src, dst, *args, **kwargs):
            global moves
            into_out = os.path.abspath(dst) == out or os.path.abspath(dst).startswith(out + "/")
            moves += into_out
            if into_out and when == "before" and moves == int(count):
                os.kill(os.getpid(), signal.SIGKILL)
            result = move(src, dst, *args, **kwargs)
            if into_out and when == "after" and moves == int(count):
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return killing_move

    torch.set_num_threads(1)
    os.rename, os.replace = killing(os.rename), killing(os.replace)
    export_model(checkpoint, out, shapes=((1, 3, 49, 75),))
"""


@pytest.mark.parametrize(("when", "count"), [("before", "1"), ("after", "2")])
def test_export_killed_while_moving_files_in(
    when: str,
    count: str,
    model_dir: Path,
    checkpoints: tuple[Path, Path],
) -> None:
    """SIGKILL before the first / after the second move of anything into the model directory:
    a reader sees the old directory or the new one; the next export cleans up and installs."""
    from export import export_model

    old = _files(model_dir)
    new_checkpoint = checkpoints[1]
    _child(EXPORT_KILLED_AT_A_MOVE, str(new_checkpoint), str(model_dir), when, count)
    seen = resolve_model_dir(str(model_dir))  # what zoo.load reads
    assert _state(seen, old, new_checkpoint) in ("old", "new")

    export_model(new_checkpoint, model_dir, shapes=SHAPES)
    assert _state(model_dir, old, new_checkpoint) == "new"
    assert _hidden(model_dir.parent) == []  # build and old folders of the killed run removed
    assert (model_dir / "notes.txt").read_text() == "kept across exports"


def test_interrupted_export_leaves_the_previous_directory(
    model_dir: Path,
    checkpoints: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """KeyboardInterrupt between the two renames: the old directory is put back; the next
    export replaces it, keeping the user's file but not the card of the old weights."""
    import zoo.modeldir
    from export import export_model

    old = _files(model_dir)

    def interrupt(step: str) -> None:
        if step == "old-moved-aside":
            raise KeyboardInterrupt

    monkeypatch.setattr(zoo.modeldir, "_reached", interrupt)
    with pytest.raises(KeyboardInterrupt):
        export_model(checkpoints[1], model_dir, shapes=SHAPES)
    assert _files(model_dir) == old
    assert _hidden(model_dir.parent) == []

    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="export.api"):
        export_model(checkpoints[1], model_dir, shapes=SHAPES)
    assert _state(model_dir, old, checkpoints[1]) == "new"
    assert (model_dir / "notes.txt").read_text() == "kept across exports"
    assert not (model_dir / CARD_NAME).exists()
    assert f"{model_dir}: dropped the model card" in caplog.text


def test_export_through_a_link_replaces_the_linked_directory(
    model_dir: Path, checkpoints: tuple[Path, Path], tmp_path: Path
) -> None:
    from export import export_model

    old = _files(model_dir)
    link = tmp_path / "current"
    link.symlink_to(model_dir, target_is_directory=True)
    export_model(checkpoints[1], link, shapes=SHAPES)
    assert link.is_symlink() and link.resolve() == model_dir.resolve()
    assert _state(model_dir, old, checkpoints[1]) == "new"
    assert _hidden(model_dir.parent) == []


REPLACE_KILLED_AT_STEP = """
    import os, signal, sys
    from pathlib import Path
    import zoo.modeldir as modeldir

    target, step = Path(sys.argv[1]), sys.argv[2]
    build = modeldir.new_build_dir(target)
    for name in ("config.json", "model.onnx"):
        (build / name).write_text("new " + name)

    def reached(name):
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    modeldir._reached = reached
    modeldir.replace_dir(build, target)
"""


@pytest.mark.parametrize(
    ("step", "seen", "after_cleanup"),
    [("old-moved-aside", "old", "old"), ("new-moved-in", "new", "new")],
)
def test_replace_killed_at_each_step(step: str, seen: str, after_cleanup: str, tmp_path: Path):
    from zoo.modeldir import recover_leftovers

    target = tmp_path / "m"
    target.mkdir()
    for name in (CONFIG_NAME, ONNX_NAME):
        (target / name).write_text(f"old {name}")
    versions = {
        version: {name: f"{version} {name}".encode() for name in (CONFIG_NAME, ONNX_NAME)}
        for version in ("old", "new")
    }
    assert _child(REPLACE_KILLED_AT_STEP, str(target), step) == -9
    assert _files(resolve_model_dir(str(target))) == versions[seen]
    assert _hidden(tmp_path) != []  # the killed run's leftovers
    recover_leftovers(target)
    assert _files(target) == versions[after_cleanup]
    assert _hidden(tmp_path) == []
