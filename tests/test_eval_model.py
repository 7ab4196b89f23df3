"""`zoo eval` of a shipped model (model directory through ONNX Runtime / torch) against the
checkpoint it was exported from; per-class table, confusion matrix, plot, TTA record, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from bench.synthetic import random_checkpoint, small_config
from export.api import export_model
from tests.helpers_modeldir import smooth_image
from training.cli import eval_main
from zoo.tta import TTA

NUM_CLASSES = 3
SIZE = (48, 80)
IMAGES = 3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    return random_checkpoint("lraspp_mbv3", path, num_classes=NUM_CLASSES)


@pytest.fixture(scope="module")
def model_dir(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "m"
    return export_model(checkpoint, out, shapes=((1, 3, *SIZE),))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder dataset with the model's classes: smooth images, masks of class bands with an
    ignored (255) border."""
    root = tmp_path_factory.mktemp("data")
    classes = small_config("lraspp_mbv3", NUM_CLASSES).classes
    (root / "dataset.json").write_text(json.dumps({"classes": classes}))
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for index in range(IMAGES):
            Image.fromarray(smooth_image(*SIZE, seed=50 + index)).save(
                root / "images" / split / f"{index}.png"
            )
            mask = rng.integers(0, NUM_CLASSES, (SIZE[0] // 8, SIZE[1] // 8)).astype(np.uint8)
            mask = np.kron(mask, np.ones((8, 8), np.uint8))
            mask[:3] = 255
            Image.fromarray(mask).save(root / "masks" / split / f"{index}.png")
    return root


def _valid_pixels(root: Path) -> tuple[int, np.ndarray]:
    """Non-ignored pixels and per-class ground-truth pixels, counted from the mask files."""
    masks = [np.asarray(Image.open(p)) for p in sorted((root / "masks" / "val").glob("*.png"))]
    stacked = np.stack(masks)
    per_class = np.array([(stacked == c).sum() for c in range(NUM_CLASSES)])
    return int((stacked != 255).sum()), per_class


def _eval(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = eval_main([*argv, "--device", "cpu", "--workers", "0", "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_onnx_model_dir_matches_its_checkpoint(
    checkpoint: Path, model_dir: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    onnx_json, ckpt_json, plot = tmp_path / "eval.json", tmp_path / "ckpt.json", tmp_path / "p.png"
    code, out, err = _eval(capsys, str(model_dir), "--data-root", str(data), "--backend", "onnx",
                           "--out", str(onnx_json), "--plot", str(plot))  # fmt: skip
    assert code == 0, err
    code, _, err = _eval(capsys, str(checkpoint), "--data-root", str(data), "--out", str(ckpt_json))
    assert code == 0, err
    onnx, ckpt = json.loads(onnx_json.read_text()), json.loads(ckpt_json.read_text())
    assert onnx["inference"]["backend"] == "onnx" and onnx["inference"]["precision"] == "fp32"
    assert onnx["model_file"] == "model.onnx" and len(onnx["model_file_sha256"]) == 64
    valid, per_class = _valid_pixels(data)
    a = np.array(onnx["metrics"]["confusion_matrix"])
    b = np.array(ckpt["metrics"]["confusion_matrix"])
    assert a.shape == b.shape == (NUM_CLASSES, NUM_CLASSES)
    assert a.sum() == b.sum() == valid == onnx["metrics"]["num_pixels"]
    assert np.array_equal(a.sum(axis=1), per_class) and np.array_equal(b.sum(axis=1), per_class)
    assert len(np.unique(a.sum(axis=0))) > 1, "predictions should vary across classes"
    # each pixel whose argmax differs moves one count: agreement >= 99% bounds the difference
    assert np.abs(a - b).sum() / 2 <= 0.01 * valid
    assert onnx["metrics"]["mIoU"] == pytest.approx(ckpt["metrics"]["mIoU"], abs=0.02)
    # the per-class table names each class, with its ground-truth pixels
    lines = out.splitlines()
    for name, pixels in zip(onnx["metrics"]["classes"], per_class, strict=True):
        row = next(line for line in lines if line.startswith(name + " "))
        assert row.split()[-1] == str(pixels)
    assert onnx["metrics"]["classes"] == small_config("lraspp_mbv3", NUM_CLASSES).classes
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 100


def test_tta_eval_counts_the_segmenters_tta_masks(
    model_dir: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "eval.json"
    code, _, err = _eval(capsys, str(model_dir), "--data-root", str(data), "--backend", "onnx",
                         "--scales", "0.75", "1.25", "--flip", "--out", str(out))  # fmt: skip
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["inference"]["scales"] == [0.75, 1.25] and result["inference"]["flip"] is True
    seg = zoo.load(model_dir, backend="onnx", device="cpu")
    expected = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for index in range(IMAGES):
        image = np.asarray(Image.open(data / "images" / "val" / f"{index}.png"))
        truth = np.asarray(Image.open(data / "masks" / "val" / f"{index}.png")).astype(np.int64)
        pred = seg.predict(image, max_side=None, tta=TTA((0.75, 1.25), flip=True))
        keep = truth != 255
        expected += np.bincount(
            truth[keep] * NUM_CLASSES + pred[keep], minlength=NUM_CLASSES**2
        ).reshape(NUM_CLASSES, NUM_CLASSES)
    assert np.array_equal(np.array(result["metrics"]["confusion_matrix"]), expected)
    plain = seg.predict(np.asarray(Image.open(data / "images" / "val" / "0.png")), max_side=None)
    assert plain.shape == SIZE


def test_checkpoint_eval_records_scales(
    checkpoint: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "eval.json"
    code, _, err = _eval(capsys, str(checkpoint), "--data-root", str(data), "--scales", "0.5",
                         "1.0", "--out", str(out), "--max-images", "1")  # fmt: skip
    assert code == 0, err
    inference = json.loads(out.read_text())["inference"]
    assert inference["scales"] == [0.5, 1.0] and inference["flip"] is False


def test_eval_json_keeps_the_export_report(
    model_dir: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Evaluating into the model directory's eval.json replaces the metrics, not the export
    report (and the precision figures) that zoo export wrote there."""
    before = json.loads((model_dir / "eval.json").read_text())
    assert "export" in before
    code, _, err = _eval(capsys, str(model_dir), "--data-root", str(data), "--backend", "torch",
                         "--out", str(model_dir / "eval.json"), "--max-images", "1")  # fmt: skip
    assert code == 0, err
    after = json.loads((model_dir / "eval.json").read_text())
    assert after["export"] == before["export"]
    assert after["inference"]["backend"] == "torch" and after["metrics"]["num_images"] == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--scales", "0"], "TTA scale 0.0 must be in (0, 8]"),
        (["--precision", "int8"], "model.int8.onnx"),
        (["--amp", "bf16"], "--amp applies to checkpoints"),
        (["--max-images", "-1"], "--max-images must be >= 0"),
    ],
)
def test_bad_model_options_are_one_line_errors(
    model_dir: Path, data: Path, capsys: pytest.CaptureFixture, extra: list[str], message: str
) -> None:
    code, _, err = _eval(capsys, str(model_dir), "--data-root", str(data), *extra)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("option", ["--out", "--plot"])
def test_out_folder_is_refused_before_evaluating(
    model_dir: Path,
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
) -> None:
    monkeypatch.setattr(zoo, "load", lambda *a, **k: pytest.fail("evaluated before the check"))
    code, _, err = _eval(capsys, str(model_dir), "--data-root", str(data), option, str(tmp_path))
    assert code == 2 and f"{option} {tmp_path} is a folder: give the file to write" in err
    assert len(err.strip().splitlines()) == 1


def test_checkpoint_rejects_model_options(
    checkpoint: Path, data: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = _eval(capsys, str(checkpoint), "--data-root", str(data), "--backend", "onnx")
    assert code == 2 and "--backend select a shipped model's file" in err


def test_data_with_other_classes_is_refused(
    model_dir: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    for folder in ("images", "masks"):
        (other / folder).symlink_to(data / folder)
    (other / "dataset.json").write_text(json.dumps({"classes": ["a", "b", "c", "d", "e"]}))
    code, _, err = _eval(capsys, str(model_dir), "--data-root", str(other))
    assert code == 2 and "predicts 3 classes but the data at" in err and "has 5" in err


def test_plot_without_matplotlib_fails_before_evaluating(
    model_dir: Path, data: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setattr(zoo, "load", lambda *a, **k: pytest.fail("evaluated before the check"))
    code, _, err = _eval(capsys, str(model_dir), "--data-root", str(data), "--plot", "x.png")
    assert code == 2 and "pip install 'cpg-zoo[plot]'" in err


def test_built_in_model_by_name_on_its_benchmark_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A name `zoo.load` takes (the built-in model, as a registry id would be) evaluated on its
    dataset's own layout (SynthCity, 19 classes)."""
    from training.data import write_tiny_dataset
    from zoo.availability import packaged_models

    name = "lraspp_mbv3_synthcity_cpg"
    assert name in packaged_models()
    root = write_tiny_dataset("synthcity", tmp_path / "synthcity", n_val=1, size=(48, 64))
    out = tmp_path / "eval.json"
    code, stdout, err = _eval(capsys, name, "--data-root", str(root), "--backend", "onnx",
                              "--out", str(out))  # fmt: skip
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["model"] == name and result["metrics"]["num_images"] == 1
    classes = result["metrics"]["classes"]
    assert len(classes) == 19 and classes[0] == "road"
    assert np.array(result["metrics"]["confusion_matrix"]).shape == (19, 19)
    table = stdout.splitlines()[3 : 3 + len(classes)]
    assert [line[: len(label)] for line, label in zip(table, classes, strict=True)] == classes


def test_precision_selects_the_file_measured(
    model_dir: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """--precision int8 measures model.int8.onnx (here a copy of the fp32 file, so the counts
    must equal fp32's), and eval.json names that file and its sha256."""
    import shutil

    from zoo.fileio import file_sha256
    from zoo.modeldir import record_files

    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    shutil.copy(copy / "model.onnx", copy / "model.int8.onnx")
    record_files(copy)
    results = {}
    for precision in ("fp32", "int8"):
        out = tmp_path / f"{precision}.json"
        code, _, err = _eval(capsys, str(copy), "--data-root", str(data), "--backend", "onnx",
                             "--precision", precision, "--out", str(out))  # fmt: skip
        assert code == 0, err
        results[precision] = json.loads(out.read_text())
    int8 = results["int8"]
    assert int8["inference"]["precision"] == "int8" and int8["model_file"] == "model.int8.onnx"
    assert int8["model_file_sha256"] == file_sha256(copy / "model.onnx")
    assert int8["metrics"]["confusion_matrix"] == results["fp32"]["metrics"]["confusion_matrix"]


def test_plot_from_an_eval_json(
    model_dir: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from training.eval_plot import main as plot_main

    out = tmp_path / "eval.json"
    code, _, err = _eval(capsys, str(model_dir), "--data-root", str(data), "--backend", "onnx",
                         "--out", str(out), "--max-images", "1")  # fmt: skip
    assert code == 0, err
    assert plot_main([str(out), str(tmp_path / "cm.png")]) == 0
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"metrics": {"mIoU": 0.5}}))
    assert plot_main([str(old), str(tmp_path / "x.png")]) == 2
    assert "has no metrics.confusion_matrix" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_model_eval_refuses_torchrun(
    model_dir: Path, data: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(zoo, "load", lambda *a, **k: pytest.fail("evaluated under torchrun"))
    code, _, err = _eval(capsys, str(model_dir), "--data-root", str(data))
    assert code == 2 and "without torchrun" in err


def test_min_agreement_evaluates_an_int8_file_below_its_gate(
    checkpoint: Path, model_dir: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The refusal names --min-agreement, and zoo eval takes it (eval exists to measure such
    a file); a checkpoint refuses it like the other model-file options."""
    import shutil

    from zoo.modeldir import record_files

    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    shutil.copy(copy / "model.onnx", copy / "model.int8.onnx")
    record = json.loads((copy / "eval.json").read_text())
    record["precision_agreement"] = {"onnx/int8": {"argmax_agreement": 0.9736}}
    (copy / "eval.json").write_text(json.dumps(record))
    record_files(copy)
    argv = [str(copy), "--data-root", str(data), "--precision", "int8", "--max-images", "1"]
    code, _, err = _eval(capsys, *argv)
    assert code == 2 and "97.36%" in err and "--min-agreement" in err
    code, out, err = _eval(capsys, *argv, "--min-agreement", "0.97")
    assert code == 0, err
    assert "mIoU" in out
    code, _, err = _eval(capsys, str(checkpoint), "--data-root", str(data),
                         "--min-agreement", "0.9")  # fmt: skip
    assert code == 2 and "--min-agreement select a shipped model's file" in err
