"""Folder datasets (`dataset.json`, `images/`, `masks/`): every mask style, and bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import DatasetFileError, DatasetLayoutError
from training.data.cli import main as data_main
from training.data.dataset import FolderDataset
from training.data.folder import check_folder_dataset, read_mask, read_spec

CLASSES = ["background", "crack", "patch"]
PALETTE = [[0, 0, 0], [255, 0, 0], [0, 128, 255]]


def _ids(seed: int, size: tuple[int, int] = (12, 16)) -> np.ndarray:
    """Class ids 0..2 in blocks, with an ignored (255) corner."""
    ids = np.zeros(size, np.uint8)
    ids[:, size[1] // 2 :] = 1
    ids[size[0] // 2 :, : size[1] // 3] = 2 if seed % 2 else 1
    ids[:2, :2] = 255
    return ids


def _photo(seed: int, size: tuple[int, int] = (12, 16)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def _save_mask(ids: np.ndarray, path: Path, style: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if style == "ids":
        Image.fromarray(ids).save(path)
    elif style == "raw16":  # 16-bit raw values 1000 + 7 * id, mapped by label_values
        raw = np.where(ids == 255, 0, 1000 + 7 * ids.astype(np.uint16)).astype(np.uint16)
        Image.fromarray(raw).save(path)
    elif style == "palette":
        image = Image.fromarray(ids, mode="P")
        image.putpalette([v for c in PALETTE for v in c] + [255, 255, 255] * 253)
        image.save(path)
    elif style == "rgb":  # ignored pixels painted as class 0 (RGB masks have no ignore colour)
        Image.fromarray(np.asarray(PALETTE, np.uint8)[np.where(ids == 255, 0, ids)]).save(path)


def make_folder_dataset(
    root: Path,
    style: str = "ids",
    n_train: int = 3,
    n_val: int = 2,
    spec: dict | None = None,
    size: tuple[int, int] = (12, 16),
) -> Path:
    """A small folder dataset with nested folders and mixed image extensions."""
    root.mkdir(parents=True, exist_ok=True)
    spec = spec if spec is not None else {"classes": CLASSES, "palette": PALETTE}
    if style == "raw16":
        spec = {**spec, "label_values": {str(1000 + 7 * i): i for i in range(3)} | {"0": 255}}
    (root / "dataset.json").write_text(json.dumps(spec))
    extensions = (".jpg", ".PNG", ".tif", ".JPEG", ".bmp")
    for split, count in (("train", n_train), ("val", n_val)):
        for i in range(count):
            name = f"site{i % 2}/day{i}/img{i}"
            image_path = root / "images" / split / (name + extensions[i % len(extensions)])
            image_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_photo(i, size)).save(image_path, quality=95)
            _save_mask(_ids(i, size), root / "masks" / split / (name + ".png"), style)
    return root


@pytest.mark.parametrize("style", ["ids", "raw16", "palette", "rgb"])
def test_every_mask_style_reads_as_class_ids(tmp_path: Path, style: str) -> None:
    root = make_folder_dataset(tmp_path / style, style)
    dataset = FolderDataset(root, "train")
    assert len(dataset) == 3
    assert dataset.info.classes == tuple(CLASSES)
    names = [pair.name for pair in dataset.pairs]
    assert names == ["site0/day0/img0", "site0/day2/img2", "site1/day1/img1"]
    image, mask = dataset[2]
    assert tuple(image.shape) == (3, 12, 16)
    expected = _ids(1).astype(np.int64)
    if style == "rgb":
        expected[expected == 255] = 0
    assert np.array_equal(mask.numpy(), expected)


def test_check_summarises_splits_and_class_shares(tmp_path: Path, capsys) -> None:
    root = make_folder_dataset(tmp_path / "d", "palette", n_train=4, n_val=2)
    _spec, summaries = check_folder_dataset(root)
    assert sorted(summaries) == ["train", "val"]
    assert summaries["train"].images == 4
    expected = np.zeros(3, np.int64)
    for i in range(4):
        ids = _ids(i)
        expected += np.bincount(ids[ids != 255], minlength=3)
    assert summaries["train"].class_pixels.tolist() == expected.tolist()
    assert summaries["train"].ignored_pixels == 4 * 4
    assert data_main(["check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "train: 4 images" in out and "val: 2 images" in out and "crack" in out


def test_palette_is_made_when_absent(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "d", spec={"classes": CLASSES})
    palette = read_spec(root).info.palette
    assert len(palette) == 3 and len(set(palette)) == 3


def _expect(root: Path, error: type[Exception], *fragments: str) -> None:
    with pytest.raises(error) as info:
        check_folder_dataset(root)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_image_without_mask_and_mask_without_image(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "a")
    (root / "masks/train/site0/day0/img0.png").unlink()
    _expect(root, DatasetLayoutError, "without a mask", "img0.jpg")
    root = make_folder_dataset(tmp_path / "b")
    (root / "images/val/site1/day1/img1.PNG").unlink()
    _expect(root, DatasetLayoutError, "without an image", "img1.png")


def test_size_mismatch_names_both_files(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "d")
    Image.fromarray(_ids(0, (10, 16))).save(root / "masks/train/site0/day0/img0.png")
    _expect(root, DatasetFileError, "img0.jpg is 16x12", "img0.png is 16x10")


def test_bad_mask_value_is_named(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "d")
    ids = _ids(1)
    ids[5, 5] = 7
    Image.fromarray(ids).save(root / "masks/train/site1/day1/img1.png")
    _expect(root, DatasetFileError, "[7]", "img1.png", "ignore index 255")


def test_unknown_rgb_colour_is_named(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "d", "rgb")
    mask = np.asarray(Image.open(root / "masks/val/site0/day0/img0.png")).copy()
    mask[3, 3] = (10, 20, 30)
    Image.fromarray(mask).save(root / "masks/val/site0/day0/img0.png")
    _expect(root, DatasetFileError, "(10, 20, 30)", "not in the palette")


def test_empty_split_and_unreadable_image(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "a")
    for path in (root / "images/val").rglob("*.*"):
        path.unlink()
    for path in (root / "masks/val").rglob("*.png"):
        path.unlink()
    _expect(root, DatasetLayoutError, "'val' is empty")
    root = make_folder_dataset(tmp_path / "b")
    (root / "images/train/site1/day1/img1.PNG").write_bytes(b"not an image")
    _expect(root, DatasetFileError, "cannot read image", "img1.PNG")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "dataset.json not found"),
        ("{not json", "not valid JSON"),
        ('{"palette": []}', '"classes" must be a non-empty list'),
        ('{"classes": ["a", "a"]}', "repeats 'a'"),
        ('{"classes": ["a", "b"], "palette": [[0, 0, 0]]}', "must list 2 [r, g, b]"),
        ('{"classes": ["a", "b"], "ignore_index": 1}', '"ignore_index" 1 is a class id'),
        ('{"classes": ["a"], "label_values": {"3": 4}}', "maps 3 to 4"),
        (
            '{"classes": ["a", "b"], "label_values": {"38": "1"}}',
            '"label_values" maps "38" to "1", which is not an integer: map each raw value to a '
            "class id (0..1) or the ignore index 255",
        ),
        ('{"classes": ["a"], "label_values": {"38": true}}', 'maps "38" to true, which is not'),
        (
            '{"classes": ["a"], "label_values": {"crack": 0}}',
            '"label_values" key "crack" is not a raw mask value: keys are the mask\'s pixel '
            "values 0..65535",
        ),
        ('{"classes": ["a"], "label_values": {"-1": 0}}', 'key "-1" is not a raw mask value'),
        ('{"classes": ["a"], "label_values": {"70000": 0}}', 'key "70000" is not a raw mask'),
        ('{"classes": ["a"], "label_values": [[38, 0]]}', "must be a JSON object of raw mask"),
        ('{"classes": ["a"], "colours": []}', "unknown key(s) 'colours'"),
    ],
)
def test_bad_dataset_json(tmp_path: Path, content: str | None, fragment: str) -> None:
    root = make_folder_dataset(tmp_path / "d")
    if content is None:
        (root / "dataset.json").unlink()
    else:
        (root / "dataset.json").write_text(content)
    _expect(root, DatasetLayoutError, fragment)


def test_dataset_json_saved_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "d", spec={"classes": ["background", "crack"]})
    text = (root / "dataset.json").read_text(encoding="utf-8")
    (root / "dataset.json").write_bytes(b"\xef\xbb\xbf" + text.encode())  # as Notepad saves it
    assert read_spec(root).info.classes == ("background", "crack")


def test_unmapped_raw_value_with_label_values(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "d", "raw16")
    spec = read_spec(root)
    Image.fromarray(np.full((4, 4), 1003, np.uint16)).save(tmp_path / "m.png")
    with pytest.raises(DatasetFileError, match=r"\[1003\].*not in label_values"):
        read_mask(tmp_path / "m.png", spec)


def test_cli_reports_errors_in_one_line(tmp_path: Path, capsys) -> None:
    assert data_main(["check", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("zoo data check: error:") and "dataset.json not found" in err
    assert len(err.splitlines()) == 1


def make_hf_dataset(root: Path, n_train: int = 3, n_val: int = 2) -> Path:
    """A `datasets.DatasetDict` (image + palette-mode annotation) saved to disk, with a
    dataset.json beside it for the class names."""
    datasets = pytest.importorskip("datasets")
    splits = {}
    for split, count in (("train", n_train), ("validation", n_val)):
        masks = []
        for i in range(count):
            mask = Image.fromarray(_ids(i), mode="P")
            mask.putpalette([v for c in PALETTE for v in c] + [255, 255, 255] * 253)
            masks.append(mask)
        images = [Image.fromarray(_photo(i)) for i in range(count)]
        features = datasets.Features({"image": datasets.Image(), "annotation": datasets.Image()})
        splits[split] = datasets.Dataset.from_dict(
            {"image": images, "annotation": masks}, features=features
        )
    datasets.DatasetDict(splits).save_to_disk(str(root))
    (root / "dataset.json").write_text(json.dumps({"classes": CLASSES}))
    return root


def test_hf_dataset_saved_to_disk(tmp_path: Path) -> None:
    from training.data.hf import HFSegmentationDataset, is_hf_dataset

    root = make_hf_dataset(tmp_path / "hf")
    assert is_hf_dataset(root) and not is_hf_dataset(make_folder_dataset(tmp_path / "folder"))
    val = HFSegmentationDataset(root, "val")
    assert len(val) == 2 and val.info.classes == tuple(CLASSES)
    image, mask = val[1]
    assert tuple(image.shape) == (3, 12, 16)
    assert np.array_equal(image.permute(1, 2, 0).numpy(), _photo(1))
    assert np.array_equal(mask.numpy(), _ids(1).astype(np.int64))
    with pytest.raises(DatasetLayoutError, match=r"column\(s\) \['label'\] not found"):
        HFSegmentationDataset(root, "train", mask_column="label")
    (root / "dataset.json").unlink()
    with pytest.raises(DatasetLayoutError, match="no class names"):
        HFSegmentationDataset(root, "train")


def test_one_bit_mask_reads_as_class_ids_and_other_modes_name_theirs(tmp_path: Path) -> None:
    spec = read_spec(make_folder_dataset(tmp_path / "d", spec={"classes": ["background", "crack"]}))
    ids = np.zeros((6, 8), np.uint8)
    ids[2:5, 3:7] = 1
    Image.fromarray(ids * 255).convert("1").save(tmp_path / "binary.png")
    assert Image.open(tmp_path / "binary.png").mode == "1"
    assert np.array_equal(read_mask(tmp_path / "binary.png", spec), ids.astype(np.int64))
    Image.fromarray(np.dstack([ids, np.full_like(ids, 255)]), "LA").save(tmp_path / "la.png")
    with pytest.raises(DatasetFileError, match=r"la\.png has the image mode 'LA'; expected a"):
        read_mask(tmp_path / "la.png", spec)


def test_a_size_mismatch_from_exif_orientation_says_so(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "d", n_train=1, n_val=1, size=(12, 16))
    image = next((root / "images/train").rglob("img0.*"))
    photo = Image.open(image).convert("RGB")
    exif = photo.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    rotated = image.with_suffix(".jpg")
    image.unlink()
    photo.save(rotated, exif=exif)
    mask = next((root / "masks/train").rglob("img0.png"))  # 16x12, as the stored pixels
    _expect(
        root,
        DatasetFileError,
        f"image {rotated} is 12x16 but its mask {mask} is 16x12 (width x height); the image is "
        "stored as 16x12, but its EXIF orientation (6) turns it",
        "turn the mask the same way, or, if it was drawn on the stored pixels, remove the "
        "image's orientation tag",
    )
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(mask)  # no orientation story: no hint
    with pytest.raises(DatasetFileError) as info:
        check_folder_dataset(root)
    assert str(info.value).endswith("is 5x5 (width x height)")


def test_a_grey_mask_saved_as_rgb_says_so(tmp_path: Path) -> None:
    spec = read_spec(make_folder_dataset(tmp_path / "d", spec={"classes": CLASSES}))
    ids = _ids(0)
    ids[ids == 255] = 0
    Image.fromarray(np.dstack([ids] * 3)).save(tmp_path / "grey.png")
    with pytest.raises(DatasetFileError) as info:
        read_mask(tmp_path / "grey.png", spec)
    assert str(info.value).endswith(
        "(its three channels are equal: a grey mask saved as RGB; "
        "Image.open(path).convert('L').save(path) makes it single-channel)"
    )
    Image.fromarray(np.asarray(PALETTE, np.uint8)[ids]).save(tmp_path / "colour.png")
    with pytest.raises(DatasetFileError) as info:
        read_mask(tmp_path / "colour.png", spec)
    assert 'needs a "palette"' in str(info.value) and "saved as RGB" not in str(info.value)
