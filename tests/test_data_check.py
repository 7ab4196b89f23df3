"""`zoo data check` accepts what `zoo train --data-root` accepts and reports what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_folder_dataset import CLASSES, _ids, make_folder_dataset, make_hf_dataset
from training.cli import train_main
from training.data.cli import main as data_main


def _error(capsys: pytest.CaptureFixture[str], prog: str) -> str:
    """The one error line of `prog`, without its "prog: error: " prefix."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    prefix = f"{prog}: error: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix) :]


def _train_error(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    argv = ["--arch", "lraspp_mbv3", "--data-root", str(root), "--out", str(tmp_path / "run")]
    assert train_main(argv) != 0
    return _error(capsys, "zoo train")


def test_check_reads_a_saved_hugging_face_dataset(tmp_path: Path, capsys) -> None:
    root = make_hf_dataset(tmp_path / "hfdata", n_train=3, n_val=2)
    capsys.readouterr()  # (the progress bars of save_to_disk)
    assert data_main(["check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "train: 3 images" in out and "val: 2 images" in out
    # class shares of the 3 training masks, counted here from the ids they were made from
    counts = np.zeros(3, np.int64)
    for i in range(3):
        counts += np.bincount(_ids(i)[_ids(i) != 255], minlength=3)
    total = 3 * 12 * 16
    shares = ", ".join(f"{c} {100 * n / total:.1f}%" for c, n in zip(CLASSES, counts, strict=True))
    assert f"pixels: {shares}, ignored {100 * 3 * 4 / total:.1f}%" in out


def test_check_of_a_hugging_face_dataset_names_the_bad_row(tmp_path: Path, capsys) -> None:
    root = make_hf_dataset(tmp_path / "hfdata")
    (root / "dataset.json").write_text(json.dumps({"classes": CLASSES[:2]}))  # id 2 now unknown
    capsys.readouterr()  # (the progress bars of save_to_disk)
    assert data_main(["check", str(root)]) == 1
    error = _error(capsys, "zoo data check")
    assert "[2]" in error and "row 1" in error and "[train]" in error
    assert data_main(["check", str(root), "--mask-column", "label"]) == 1
    assert "column(s) ['label'] not found" in _error(capsys, "zoo data check")


def test_rgb_masks_without_a_palette_ask_for_one(tmp_path: Path, capsys) -> None:
    root = make_folder_dataset(tmp_path / "d", "rgb", spec={"classes": CLASSES})
    assert data_main(["check", str(root)]) == 1
    error = _error(capsys, "zoo data check")
    assert 'needs a "palette"' in error and "img0.png" in error, error
    assert "not in the palette" not in error


@pytest.mark.parametrize("data", ["folder", "hf"])
def test_a_missing_val_split_fails_the_check_as_it_fails_training(
    tmp_path: Path, capsys, data: str
) -> None:
    if data == "folder":
        root = make_folder_dataset(tmp_path / "bad_noval", n_train=2, n_val=0)
        assert not (root / "images/val").exists()
    else:
        root = make_hf_dataset(tmp_path / "both", n_train=2, n_val=1)
        datasets = pytest.importorskip("datasets")
        loaded = datasets.load_from_disk(str(root))
        datasets.DatasetDict({"train": loaded["train"]}).save_to_disk(str(tmp_path / "only"))
        (tmp_path / "only" / "dataset.json").write_text(json.dumps({"classes": CLASSES}))
        root = tmp_path / "only"
    capsys.readouterr()  # (the progress bars of save_to_disk)
    trainer_says = _train_error(root, tmp_path, capsys)
    assert data_main(["check", str(root)]) == 1
    check_says = _error(capsys, "zoo data check")
    assert "split(s) val missing" in check_says or "no 'val' split" in check_says
    assert check_says == trainer_says


def test_a_jpeg_mask_is_named_with_a_hint(tmp_path: Path, capsys) -> None:
    root = make_folder_dataset(tmp_path / "d")
    png = root / "masks/train/site0/day0/img0.png"
    Image.open(png).save(png.with_suffix(".jpg"), quality=95)
    png.unlink()
    assert data_main(["check", str(root)]) == 1
    error = _error(capsys, "zoo data check")
    assert str(png.with_suffix(".jpg")) in error and "lossless" in error, error
    assert "without a mask" not in error
