"""`zoo predict`: files, folders and globs -> palette PNG masks (and overlays)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from tests.helpers_modeldir import smooth_image
from zoo.cli import main as zoo_main
from zoo.predict_cli import main
from zoo.predict_inputs import collect_inputs


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(smooth_image(60, 90, seed=1)).save(root / "a.jpg", quality=95)
    Image.fromarray(smooth_image(70, 80, seed=2)).save(root / "sub" / "b.png")
    Image.fromarray(smooth_image(60, 90, seed=3)).convert("L").save(
        root / "sub" / "deeper" / "c.png"
    )
    (root / "notes.txt").write_text("not an image, ignored in folders")
    return root


def _masks(out: Path) -> dict[str, Path]:
    return {p.relative_to(out).as_posix(): p for p in sorted(out.rglob("*")) if p.is_file()}


def test_folder_writes_palette_pngs(model_dir: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main([str(images), "--model", str(model_dir), "--out", str(out), "--batch-size", "2"])
    assert code == 0
    written = _masks(out)
    assert sorted(written) == ["a.png", "sub/b.png", "sub/deeper/c.png"]
    seg = zoo.load(str(model_dir), device="cpu")
    for name, source in [("a.png", "a.jpg"), ("sub/b.png", "sub/b.png")]:
        mask = Image.open(written[name])
        assert mask.mode == "P"
        assert mask.getpalette()[: 3 * 4] == seg.palette.reshape(-1).tolist()
        assert np.array_equal(np.asarray(mask), seg.predict(images / source))
    assert not list(out.rglob(".*.tmp"))  # atomic writes leave no temp files


def test_files_globs_and_overlay(model_dir: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = [
        str(images / "a.jpg"),
        str(images / "sub" / "**" / "*.png"),
        "--model",
        str(model_dir),
        "--backend",
        "onnx",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--overlay",
        "--max-side",
        "50",
        "--quiet",
    ]
    assert zoo_main(["predict", *argv]) == 0  # through the `zoo` dispatcher
    written = _masks(out)
    assert sorted(written) == [
        "a.png",
        "a_overlay.jpg",
        "b.png",
        "b_overlay.jpg",
        "deeper/c.png",
        "deeper/c_overlay.jpg",
    ]
    assert Image.open(written["a_overlay.jpg"]).size == (90, 60)
    assert Image.open(written["a.png"]).size == (90, 60)  # input size despite --max-side


def test_corrupt_file_is_skipped(
    model_dir: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    code = main([str(images), "--model", str(model_dir), "--out", str(out), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "cannot read image" in err
    assert sorted(_masks(out)) == ["a.png", "sub/b.png", "sub/deeper/c.png"]


def test_missing_inputs_and_model_errors(
    model_dir: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main([str(images / "a.jpg"), str(tmp_path / "nope.jpg"), "--model", str(model_dir),
                 "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 1
    assert "nope.jpg: no such file or folder" in capsys.readouterr().err
    assert sorted(_masks(out)) == ["a.png"]
    code = main([str(images), "--model", str(tmp_path / "no_model"), "--out", str(out)])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(tmp_path / "empty*.png"), "--model", str(model_dir)]) == 2


def test_collect_inputs_skips_output_folder_and_renames_clashes(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    for name in ("x.jpg", "x.png", "out/old.png"):
        Image.fromarray(smooth_image(8, 8)).save(tmp_path / name)
    jobs, problems = collect_inputs([str(tmp_path)], exclude=tmp_path / "out")
    assert problems == []
    assert [j.relative.as_posix() for j in jobs] == ["x", "x_png"]


@pytest.mark.parametrize("alpha", ["1.5", "-0.1", "nan"])
def test_alpha_out_of_range_is_refused_before_writing(
    model_dir: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], alpha: str
) -> None:
    out = tmp_path / "out"
    code = main([str(images), "--model", str(model_dir), "--out", str(out), "--overlay",
                 "--alpha", alpha, "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--alpha must be in [0, 1]" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()  # no masks written for images then reported as skipped


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--alpha", "0"], "--alpha goes only with --overlay"),
        (["--overlay-format", "png"], "--overlay-format goes only with --overlay"),
        (["--alpha", "0.3", "--overlay-format", "png"], "--alpha and --overlay-format go only"),
    ],
)
def test_overlay_options_without_overlay_are_refused(
    model_dir: Path,
    images: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    """They wrote masks only, as if the option had not been given."""
    out = tmp_path / "out"
    code = main([str(images), "--model", str(model_dir), "--out", str(out), *options, "--quiet"])
    assert code == 2 and message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("below", ["", "sub"])
def test_out_under_a_file_is_one_error(
    model_dir: Path,
    images: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    below: str,
) -> None:
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    out = taken / below if below else taken
    code = main([str(images), "--model", str(model_dir), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and f"{taken} is a file, not a folder" in err
    assert len(err.strip().splitlines()) == 1  # not one error per image
    assert taken.read_text() == "a file, not a folder"


@pytest.mark.parametrize("order", ["sorted", "overlay_first"])
def test_png_overlay_never_overwrites_another_inputs_mask(
    model_dir: Path, tmp_path: Path, order: str
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    sizes = {"a.jpg": (40, 56), "a_overlay.png": (24, 32)}
    for name, (height, width) in sizes.items():
        Image.fromarray(smooth_image(height, width, seed=4)).save(folder / name)
    inputs = [str(folder / name) for name in sizes]
    if order == "overlay_first":
        inputs.reverse()
    out = tmp_path / "out"
    code = main([*inputs, "--model", str(model_dir), "--out", str(out), "--overlay",
                 "--overlay-format", "png", "--quiet"])  # fmt: skip
    assert code == 0
    files = _masks(out)
    assert len(files) == 4  # a mask and an overlay per input, none written over another
    modes = sorted((Image.open(p).mode, Image.open(p).size) for p in files.values())
    assert modes == sorted((mode, (w, h)) for h, w in sizes.values() for mode in ("P", "RGB"))
