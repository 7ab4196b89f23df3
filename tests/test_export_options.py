"""`zoo export` options a user can get wrong: each is refused up front with a message naming
it (no traceback, nothing written)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bench.synthetic import random_checkpoint
from export.cli import main as cli_main
from tests.helpers_torch import one_torch_thread  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint("lraspp_mbv3", tmp_path_factory.mktemp("ckpt") / "lraspp.pt")


def _refused(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture, *options: str) -> str:
    """Run `zoo export` with `options`; assert it fails cleanly, writing nothing; its stderr."""
    out = tmp_path / "m"
    assert cli_main([str(checkpoint), "--out", str(out), "-q", *options]) == 1
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []
    return capsys.readouterr().err


@pytest.mark.parametrize("opset", ["99", "16"])
def test_opset_out_of_range_is_refused(
    opset: str, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    err = _refused(checkpoint, tmp_path, capsys, "--opset", opset)
    assert "opset must be between 17 and " in err and f"got {opset}" in err


@pytest.mark.parametrize("shape", ["0x3x64x64", "1x3x0x64", "1x3x64x-8"])
def test_empty_parity_shape_is_refused(
    shape: str, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    err = _refused(checkpoint, tmp_path, capsys, "--shape", shape)
    assert f"parity shape must be N x 3 x H x W with N, H, W >= 1, got {shape}" in err


CALIBRATION = ("--int8", "--calib-data", "{frames}")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--max-diff", "-1"), "--max-diff) must be a finite number >= 0, got -1.0"),
        (("--max-diff", "nan"), "--max-diff) must be a finite number >= 0, got nan"),
        ((*CALIBRATION, "--int8-min-agreement", "98"), "--int8-min-agreement) is a fraction in"),
        ((*CALIBRATION, "--int8-max-miou-drop", "-0.5"), "--int8-max-miou-drop) is a fraction"),
        ((*CALIBRATION, "--calib-limit", "0"), "--calib-limit) must be >= 1 image, got 0"),
        ((*CALIBRATION, "--calib-limit", "-2"), "--calib-limit) must be >= 1 image, got -2"),
        ((*CALIBRATION, "--calib-size", "0x5"), "H, W >= 1, got 0x5"),
    ],
)
def test_meaningless_option_is_refused(
    options: tuple[str, ...],
    message: str,
    checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    frames = tmp_path / "frames"  # two calibration images, for the options that read them
    frames.mkdir()
    for index in range(2):
        Image.new("RGB", (40, 30), (60 * index, 90, 200)).save(frames / f"{index}.png")
    out = tmp_path / "out"
    out.mkdir()
    err = _refused(checkpoint, out, capsys, *(o.format(frames=frames) for o in options))
    assert message in err


def test_missing_calibration_label_folder_is_refused(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A mistyped --calib-labels was ignored: the export ran without measuring any mIoU."""
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.new("RGB", (40, 30), (60, 90, 200)).save(frames / "0.png")
    out = tmp_path / "out"
    out.mkdir()
    missing = tmp_path / "labelz"
    options = [o.format(frames=frames) for o in CALIBRATION]
    err = _refused(checkpoint, out, capsys, *options, "--calib-labels", str(missing))
    assert f"zoo export: error: {missing}: calibration label folder not found" in err


def test_miou_gate_without_labels_is_refused(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """--int8-max-miou-drop with unlabelled calibration images was a gate never applied."""
    frames, labels = tmp_path / "frames", tmp_path / "labels"
    for folder in (frames, labels):
        folder.mkdir()
    for index in range(2):
        Image.new("RGB", (40, 30), (60 * index, 90, 200)).save(frames / f"{index}.png")
    Image.new("L", (40, 30), 1).save(labels / "0.png")  # 1.png has no label
    out = tmp_path / "out"
    out.mkdir()
    options = [o.format(frames=frames) for o in CALIBRATION]
    gate = ["--calib-labels", str(labels), "--int8-max-miou-drop", "0.05"]
    gate += ["--max-diff", "1", "--int8-min-agreement", "0"]  # the other gates pass
    err = _refused(checkpoint, out, capsys, *options, *gate)
    assert "the int8 mIoU gate (--int8-max-miou-drop) needs a label for every calibration" in err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--calib-labels", "labels"], "--calib-labels goes only with --calib-data, which is not"),
        (["--calib-limit", "4", "--calib-size", "64x64"], "--calib-size and --calib-limit go only"),
        (["--int8-per-tensor"], "--int8-per-tensor goes only with --int8, which is not given"),
        (["--calib-data", "{frames}", "--int8-min-agreement", "0.9"], "goes only with --int8"),
        (["--int8-max-miou-drop", "0.01"], "--int8-max-miou-drop goes only with --int8"),
    ],
)
def test_option_that_needs_another_is_refused_without_it(
    options: list[str],
    message: str,
    checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    """Such an option did nothing: `--calib-labels L` without --calib-data measured no mIoU."""
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.new("RGB", (40, 30), (60, 90, 200)).save(frames / "0.png")
    out = tmp_path / "m"
    argv = [str(checkpoint), "--out", str(out), "-q", *(o.format(frames=frames) for o in options)]
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_export_into_a_project_folder_keeps_its_readme(checkpoint: Path, tmp_path: Path) -> None:
    """`zoo export CKPT --out .` in a project deleted the project's README.md as if it were
    the card of earlier weights."""
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    readme = "# My project\n\nNotes that are not a model card.\n"
    (project / "README.md").write_text(readme)
    (project / "src" / "main.py").write_text("print('hi')\n")
    assert cli_main([str(checkpoint), "--out", str(project), "-q", "--shape", "1x3x32x32"]) == 0
    assert (project / "README.md").read_text() == readme
    assert (project / "src" / "main.py").read_text() == "print('hi')\n"
    assert (project / "config.json").is_file()


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("", "the output model directory is empty ('')"),
        ("afile/m", "afile is a file, not a folder"),
        (".", ". is the current folder (or holds it): the export replaces its output folder"),
        ("..", ".. is the current folder (or holds it)"),
    ],
)
def test_out_that_cannot_be_a_model_directory_is_refused(
    out: str,
    message: str,
    checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "afile").write_text("a file")
    monkeypatch.chdir(work)
    assert cli_main([str(checkpoint), "--out", out, "-q"]) == 1
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["afile", "work"]


def test_export_over_another_tools_config_is_refused(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A folder whose config.json is not a model config (another tool's) is not replaced;
    a model directory of ours (here one exported before) is."""
    folder = tmp_path / "tool"
    folder.mkdir()
    theirs = '{"learning_rate": 0.1, "layers": 4}\n'
    (folder / "config.json").write_text(theirs)
    argv = [str(checkpoint), "--out", str(folder), "-q", "--shape", "1x3x32x32"]
    assert cli_main(argv) == 1
    assert "config.json is not a cpg-zoo model config" in capsys.readouterr().err
    assert (folder / "config.json").read_text() == theirs
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]
    (folder / "config.json").unlink()
    assert cli_main(argv) == 0
    assert cli_main(argv) == 0  # our own model directory: replaced
