"""Writing SynthCity into a folder that already holds data: what was asked for, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.data import DatasetLayoutError
from training.data.cli import main as data_cli
from training.data.synthcity import writer


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _frame_files(split: str, *stems: str) -> list[str]:
    city = "synth0" if split == "train" else "synthval0"
    files = []
    for stem in stems:
        name = f"{city}/{city}_{stem}_000019"
        files += [
            f"gtFine/{split}/{name}_gtFine_labelIds.png",
            f"gtFine/{split}/{name}_gtFine_labelTrainIds.png",
            f"leftImg8bit/{split}/{name}_leftImg8bit.png",
        ]
    return files


def _expected(n_train: int, n_val: int) -> list[str]:
    stems = [f"{i:06d}" for i in range(max(n_train, n_val))]
    return sorted(_frame_files("train", *stems[:n_train]) + _frame_files("val", *stems[:n_val]))


def _write(root: Path, n_train: int, n_val: int, seed: int = 0) -> Path:
    return writer.write_synthcity(
        root, n_train=n_train, n_val=n_val, size=(16, 32), seed=seed, workers=1, progress=False
    )


def test_regenerating_leaves_exactly_the_new_set(tmp_path: Path) -> None:
    root = tmp_path / "sc2"
    args = ["--height", "16", "--width", "32", "--workers", "1"]
    assert data_cli(["synthcity", str(root), "--train", "4", "--val", "2", *args]) == 0
    assert _files(root) == _expected(4, 2)
    assert data_cli(["synthcity", str(root), "--train", "2", "--val", "1", *args]) == 0
    assert _files(root) == _expected(2, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sc2"]  # no build/old folder left


def test_regenerating_with_another_seed_replaces_the_frames(tmp_path: Path) -> None:
    root = _write(tmp_path / "sc", 1, 1, seed=0)
    before = (root / _frame_files("train", "000000")[2]).read_bytes()
    _write(root, 1, 1, seed=5)
    fresh = _write(tmp_path / "fresh", 1, 1, seed=5)
    name = _frame_files("train", "000000")[2]
    assert (root / name).read_bytes() == (fresh / name).read_bytes() != before


def test_a_failed_regeneration_keeps_the_previous_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write(tmp_path / "sc", 3, 1)
    before = {name: (root / name).read_bytes() for name in _files(root)}
    original = writer._write_frame
    written: list[int] = []

    def fail_on_second(job: tuple) -> None:  # the fault: rendering frame 2 of the new set
        if written:
            raise RuntimeError("injected fault")
        written.append(job[2])
        original(job)

    monkeypatch.setattr(writer, "_write_frame", fail_on_second)
    with pytest.raises(RuntimeError, match="injected fault"):
        _write(root, 1, 1, seed=9)
    assert {name: (root / name).read_bytes() for name in _files(root)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sc"]


def test_a_folder_of_other_data_is_refused(tmp_path: Path, capsys) -> None:
    other = tmp_path / "photos"
    (other / "leftImg8bit").mkdir(parents=True)
    (other / "holiday.jpg").write_bytes(b"not synthcity")
    with pytest.raises(DatasetLayoutError, match=r"holiday\.jpg"):
        _write(other, 1, 1)
    assert _files(other) == ["holiday.jpg"] and (other / "leftImg8bit").is_dir()
    assert data_cli(["synthcity", str(other), "--train", "1", "--val", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zoo data synthcity: error:") and "not SynthCity" in err
    # A real city folder of Cityscapes is refused as well.
    cityscapes = tmp_path / "cityscapes"
    aachen = cityscapes / "leftImg8bit" / "train" / "aachen"
    aachen.mkdir(parents=True)
    (aachen / "aachen_000000_000019_leftImg8bit.png").write_bytes(b"")
    with pytest.raises(DatasetLayoutError, match="aachen"):
        _write(cityscapes, 1, 1)


def test_an_empty_existing_folder_is_used(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    _write(root, 1, 1)
    assert _files(root) == _expected(1, 1)
