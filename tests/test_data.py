"""Dataset layouts, label conversion, prepare, errors, and SynthCity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from training.data import (
    LAYOUTS,
    DatasetFileError,
    DatasetLayoutError,
    build_dataset,
    prepare_dataset,
    write_tiny_dataset,
)
from training.data.cli import main as data_cli
from training.data.synthcity import frame_rng, render_frame, write_synthcity
from zoo.datasets import get_dataset_info

# raw label value -> expected train id, per dataset (from the datasets' documentation).
KNOWN = {
    "cityscapes": {0: 255, 1: 255, 6: 255, 7: 0, 8: 1, 11: 2, 24: 11, 26: 13, 33: 18},
    "ade20k": {0: 255, 1: 0, 2: 1, 150: 149},
    "cocostuff": {0: 0, 10: 10, 11: 255, 12: 11, 90: 255, 91: 80, 181: 170, 255: 255},
}


def _raw(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.mark.parametrize("name", ["cityscapes", "ade20k", "cocostuff", "synthcity"])
def test_lut_matches_class_count(name: str) -> None:
    lut = LAYOUTS[name].lut
    assert lut.dtype == np.uint8 and lut.shape == (256,)
    used = set(lut.tolist()) - {255}
    assert used == set(range(get_dataset_info(name).num_classes))
    raw_max = {"cityscapes": 33, "synthcity": 33, "ade20k": 150, "cocostuff": 181}[name]
    assert (lut[raw_max + 1 :] == 255).all()  # out-of-range raw values are ignored
    assert list(lut[lut != 255]) == sorted(lut[lut != 255])  # order of raw ids is kept


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_reader_maps_raw_labels_and_prepare_is_identical(name: str, tmp_path: Path) -> None:
    root = write_tiny_dataset(name, tmp_path, n_train=2, n_val=1)
    raw = {split: build_dataset(name, root, split) for split in ("train", "val")}
    assert (len(raw["train"]), len(raw["val"])) == (2, 1)
    dataset = raw["train"]
    assert dataset.info.name == name
    image, mask = dataset[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8
    assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64
    assert image.shape == (3, *mask.shape)
    label = _raw(dataset.files[0][1])
    for value, train_id in KNOWN[name].items():
        assert (label == value).any(), f"tiny {name} label lacks raw value {value}"
        assert set(mask[torch.from_numpy(label == value)].tolist()) == {train_id}

    before = {split: [d[i][1] for i in range(len(d))] for split, d in raw.items()}
    assert prepare_dataset(name, root, workers=2, progress=False) == (3, 0)
    for split in ("train", "val"):
        prepared = build_dataset(name, root, split)
        assert all(s.train_ids for s in prepared.samples)
        assert prepared.files[0][1] != raw[split].files[0][1]
        for i in range(len(prepared)):
            assert torch.equal(prepared[i][1], before[split][i])
    # Idempotent: a second run converts nothing and leaves the files alone.
    stamp = prepared.files[0][1].stat().st_mtime_ns
    assert prepare_dataset(name, root, progress=False) == (0, 3)
    assert prepared.files[0][1].stat().st_mtime_ns == stamp
    assert not list(Path(root).rglob("*.tmp"))


def test_cityscapes_prepare_writes_official_names(tmp_path: Path) -> None:
    write_tiny_dataset("cityscapes", tmp_path, n_train=1, n_val=0)
    assert data_cli(["prepare", "cityscapes", str(tmp_path), "--workers", "1"]) == 0
    (label,) = (tmp_path / "gtFine/train/tiny").glob("*_gtFine_labelTrainIds.png")
    assert label.name == "tiny_000001_000019_gtFine_labelTrainIds.png"


def test_ade20k_root_may_be_parent_or_itself(tmp_path: Path) -> None:
    write_tiny_dataset("ade20k", tmp_path, n_train=1, n_val=1)
    inner = tmp_path / "ADEChallengeData2016"
    assert (
        build_dataset("ade20k", tmp_path, "val").files
        == build_dataset("ade20k", inner, "val").files
    )


def test_unknown_dataset_or_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid datasets"):
        build_dataset("imagenet", tmp_path, "train")
    with pytest.raises(ValueError, match="valid splits: train, val"):
        build_dataset("ade20k", tmp_path, "test")


def test_missing_folder_names_expected_path(tmp_path: Path) -> None:
    (tmp_path / "foo").mkdir()
    with pytest.raises(DatasetLayoutError) as error:
        build_dataset("cityscapes", tmp_path, "train")
    message = str(error.value)
    assert f"{tmp_path}/leftImg8bit/train/*/*_leftImg8bit.png" in message
    assert f"{tmp_path}/leftImg8bit does not exist" in message
    assert "foo/" in message


def test_empty_split(tmp_path: Path) -> None:
    (tmp_path / "images/val2017").mkdir(parents=True)
    (tmp_path / "images/val2017/readme.txt").write_text("")
    with pytest.raises(DatasetLayoutError, match=r"found none.*readme\.txt"):
        build_dataset("cocostuff", tmp_path, "val")


def test_missing_labels_folder(tmp_path: Path) -> None:
    write_tiny_dataset("cocostuff", tmp_path, n_train=1, n_val=0)
    for path in (tmp_path / "annotations/train2017").iterdir():
        path.unlink()
    (tmp_path / "annotations/train2017").rmdir()
    with pytest.raises(DatasetLayoutError, match="annotations/train2017 does not exist"):
        build_dataset("cocostuff", tmp_path, "train")


def test_missing_partner_lists_unmatched_files(tmp_path: Path) -> None:
    root = write_tiny_dataset("cityscapes", tmp_path, n_train=3, n_val=0)
    dataset = build_dataset("cityscapes", root, "train")
    dataset.files[1][1].unlink()
    extra = tmp_path / "gtFine/train/tiny/tiny_000099_000019_gtFine_labelIds.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(extra)
    with pytest.raises(DatasetLayoutError) as error:
        build_dataset("cityscapes", root, "train")
    message = str(error.value)
    assert "1 images without a label" in message and str(dataset.files[1][0]) in message
    assert "1 labels without an image" in message and str(extra) in message


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    write_tiny_dataset("ade20k", tmp_path, n_train=1, n_val=0)
    dataset = build_dataset("ade20k", tmp_path, "train")
    image_path = dataset.files[0][0]
    image_path.write_bytes(image_path.read_bytes()[:40])
    with pytest.raises(DatasetFileError, match=str(image_path)):
        dataset[0]
    image_path.write_bytes(b"not an image at all")
    with pytest.raises(DatasetFileError, match=str(image_path)):
        dataset[0]


def test_rgb_label_is_rejected(tmp_path: Path) -> None:
    write_tiny_dataset("cityscapes", tmp_path, n_train=1, n_val=0)
    dataset = build_dataset("cityscapes", tmp_path, "train")
    label_path = dataset.files[0][1]
    Image.open(label_path).convert("RGB").save(label_path)
    with pytest.raises(DatasetFileError, match=f"{label_path} is a RGB image"):
        dataset[0]


def test_palette_label_reads_as_indices(tmp_path: Path) -> None:
    write_tiny_dataset("ade20k", tmp_path, n_train=1, n_val=0)
    dataset = build_dataset("ade20k", tmp_path, "train")
    _, expected = dataset[0]
    label_path = dataset.files[0][1]
    palette = Image.open(label_path).convert("P")  # same indices, with a colour palette
    palette.putpalette(list(np.random.default_rng(0).integers(0, 256, 768)))
    palette.save(label_path)
    assert Image.open(label_path).mode == "P"
    assert torch.equal(dataset[0][1], expected)


def test_image_folder_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images/train2017").write_text("")
    with pytest.raises(DatasetLayoutError, match="train2017 is not a folder"):
        build_dataset("cocostuff", tmp_path, "train")


def test_size_mismatch_and_bad_train_ids(tmp_path: Path) -> None:
    write_tiny_dataset("cityscapes", tmp_path, n_train=1, n_val=0)
    prepare_dataset("cityscapes", tmp_path, workers=1, progress=False)
    dataset = build_dataset("cityscapes", tmp_path, "train")
    label_path = dataset.files[0][1]
    Image.fromarray(np.full((32, 48), 40, np.uint8)).save(label_path)
    with pytest.raises(DatasetFileError, match=r"values \[40\]"):
        dataset[0]
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(label_path)
    with pytest.raises(DatasetFileError, match="is 48x32 but its mask"):
        dataset[0]


def test_transform_is_applied(tmp_path: Path) -> None:
    write_tiny_dataset("cocostuff", tmp_path, n_train=1, n_val=0)
    dataset = build_dataset("cocostuff", tmp_path, "train", transform=lambda i, m: (m, i))
    mask, image = dataset[0]
    assert mask.ndim == 2 and image.ndim == 3


# --- SynthCity -------------------------------------------------------------------------------

THIN = ("pole", "traffic light", "traffic sign")


def _synthcity(root: Path, seed: int = 0, n_train: int = 3) -> Path:
    return write_synthcity(
        root, n_train=n_train, n_val=2, size=(96, 192), seed=seed, workers=1, progress=False
    )


def test_synthcity_is_a_readable_cityscapes_layout(tmp_path: Path) -> None:
    _synthcity(tmp_path)
    train = build_dataset("synthcity", tmp_path, "train")
    val = build_dataset("synthcity", tmp_path, "val")
    assert (len(train), len(val)) == (3, 2)
    assert train.files[0][0].parent.name == "synth0"
    assert train.files[0][1].name.endswith("_gtFine_labelTrainIds.png")
    classes = train.info.classes
    seen: set[int] = set()
    for dataset in (train, val):
        for i, (_, label_path) in enumerate(dataset.files):
            image, mask = dataset[i]
            assert image.shape == (3, 96, 192) and mask.shape == (96, 192)
            values = set(mask.unique().tolist())
            assert values <= set(range(len(classes))) | {255}
            seen |= values
            # The raw labelIds say the same as the labelTrainIds beside them.
            raw = label_path.with_name(label_path.name.replace("TrainIds", "Ids"))
            assert torch.equal(mask, torch.from_numpy(LAYOUTS["cityscapes"].lut[_raw(raw)]).long())
    names = {classes[v] for v in seen - {255}}
    assert set(THIN) <= names
    assert {"road", "sidewalk", "building", "sky", "vegetation", "car"} <= names


def test_synthcity_is_deterministic(tmp_path: Path) -> None:
    image, label = render_frame(frame_rng(7, "train", 2), (64, 128))
    again = render_frame(frame_rng(7, "train", 2), (64, 128))
    other = render_frame(frame_rng(8, "train", 2), (64, 128))
    assert np.array_equal(image, again[0]) and np.array_equal(label, again[1])
    assert not np.array_equal(image, other[0])
    assert image.dtype == np.uint8 and image.shape == (64, 128, 3) and label.shape == (64, 128)
    # Written files depend on the seed only, not on the number of frames asked for.
    a, b = _synthcity(tmp_path / "a", n_train=1), _synthcity(tmp_path / "b", n_train=2)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files_a) == 3 * 3
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()


def test_synthcity_thin_structures_are_thin() -> None:
    """Poles are a few pixels wide at 256x512: boundaries, not blobs."""
    pole = get_dataset_info("synthcity").classes.index("pole")
    widths = []
    for i in range(6):
        _, label_ids = render_frame(frame_rng(0, "train", i), (256, 512))
        rows = LAYOUTS["synthcity"].lut[label_ids] == pole
        runs = np.diff(np.pad(rows, ((0, 0), (1, 1))).astype(np.int8), axis=1)
        widths += list(np.flatnonzero(runs.ravel() == -1) - np.flatnonzero(runs.ravel() == 1))
    assert widths and np.median(widths) <= 4


def test_cli_synthcity(tmp_path: Path) -> None:
    args = ["synthcity", str(tmp_path), "--train", "2", "--val", "1", "--height", "32"]
    assert data_cli([*args, "--width", "64", "--seed", "3", "--workers", "2"]) == 0
    assert len(build_dataset("synthcity", tmp_path, "train")) == 2
    assert len(build_dataset("synthcity", tmp_path, "val")) == 1


def test_cli_reports_layout_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert data_cli(["prepare", "ade20k", str(tmp_path)]) == 1
    assert "error:" in capsys.readouterr().err
