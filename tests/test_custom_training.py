"""Your own data end to end: fine-tune the built-in model on a 3-class folder dataset, export,
load, predict, card and demo; a Hugging Face dataset trains; the losses work for 2 classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import zoo
from tests.test_folder_dataset import CLASSES, PALETTE, make_folder_dataset, make_hf_dataset
from training.cli import train_main
from training.finetune import load_init_weights
from training.losses import CPGLoss, SegmentationObjective
from training.metrics import SegmentationMetrics
from training.trainer import Trainer
from zoo.loading import PACKAGED_MODELS_DIR
from zoo.models import build_model

BUILT_IN = "lraspp_mbv3_synthcity_cpg"
HEAD = ("classifier.low_classifier.", "classifier.high_classifier.")  # class-dependent layers
QUICK = ["iterations=2", "batch_size=2", "device=cpu", "workers=0", "amp=none", "threads=1",
         "eval_interval=2", "checkpoint_interval=2", "log_interval=1"]  # fmt: skip


def test_init_keeps_the_backbone_and_replaces_the_head() -> None:
    source = load_file(str(PACKAGED_MODELS_DIR / BUILT_IN / "model.safetensors"))
    torch.manual_seed(0)
    model = build_model("lraspp_mbv3", 3)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_init_weights(model, BUILT_IN, "lraspp_mbv3", CLASSES)
    state = model.state_dict()
    head = [k for k in state if k.startswith(HEAD)]
    assert sorted(report.reinitialised) == sorted(head) and len(head) == 4
    assert len(report.kept) == len(state) - 4 and not report.unused
    for name, tensor in state.items():
        expected = fresh[name] if name in head else source[name]
        assert torch.equal(tensor, expected), name
    with pytest.raises(ValueError, match="holds lraspp_mbv3 weights but this run trains"):
        load_init_weights(build_model("deeplabv3_mbv3", 3), BUILT_IN, "deeplabv3_mbv3", CLASSES)


def _spy_first_step(monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    """Filled with the weights the first optimizer step sees (the init, before training)."""
    first_step: dict[str, torch.Tensor] = {}
    original_step = Trainer._train_step

    def spy(self: Trainer, *args, **kwargs):
        if not first_step:
            first_step.update({k: v.clone() for k, v in self.module.state_dict().items()})
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_step", spy)
    return first_step


def test_class_rows_follow_class_names(tmp_path: Path, monkeypatch, capsys) -> None:
    """A run whose classes are some of the source's, in another order and case, starts each
    from the source's row of that name; a class the source lacks starts fresh."""
    source = load_file(str(PACKAGED_MODELS_DIR / BUILT_IN / "model.safetensors"))
    names = json.loads((PACKAGED_MODELS_DIR / BUILT_IN / "config.json").read_text())["classes"]
    classes = ["sky", "Road", "pothole"]
    data = make_folder_dataset(tmp_path / "roads", spec={"classes": classes, "palette": PALETTE})
    argv = ["--arch", "lraspp_mbv3", "--data-root", str(data), "--out", str(tmp_path / "run"),
            f"init={BUILT_IN}", *QUICK, "--no-progress"]  # fmt: skip
    state = _spy_first_step(monkeypatch)
    assert train_main(argv) == 0, capsys.readouterr().err
    assert (
        "2 from the source (sky, Road (source road)), 1 fresh (pothole)" in capsys.readouterr().out
    )
    for tensor in ("low_classifier.weight", "high_classifier.bias"):
        mine, theirs = state["classifier." + tensor], source["classifier." + tensor]
        assert torch.equal(mine[0], theirs[names.index("sky")])
        assert torch.equal(mine[1], theirs[names.index("road")])
        assert not any(torch.equal(mine[2], row) for row in theirs)  # pothole: fresh

    # The same count under other names keeps no row (a row is the class of its name).
    model = build_model("lraspp_mbv3", 19)
    fresh = model.state_dict()["classifier.low_classifier.weight"].clone()
    report = load_init_weights(model, BUILT_IN, "lraspp_mbv3", [f"c{i}" for i in range(19)])
    assert torch.equal(model.state_dict()["classifier.low_classifier.weight"], fresh)
    assert len(report.reinitialised) == 4 and len(report.fresh_classes) == 19


def test_fine_tune_export_load_predict(tmp_path: Path, monkeypatch, capsys) -> None:
    data = make_folder_dataset(tmp_path / "cracks", "palette", n_train=4, n_val=2, size=(64, 96))
    run = tmp_path / "run"
    first_step = _spy_first_step(monkeypatch)
    argv = ["--arch", "lraspp_mbv3", "--data-root", str(data), "--out", str(run),
            f"init={BUILT_IN}", *QUICK, "--no-progress"]  # fmt: skip
    assert train_main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "train: 4 images" in out and "re-initialised 4 tensors" in out
    assert "recipe lraspp_mbv3_cracks_cpg from the data: crop 64x96, 2 iterations" in out
    source = load_file(str(PACKAGED_MODELS_DIR / BUILT_IN / "model.safetensors"))
    assert all(torch.equal(first_step[k], source[k]) for k in first_step if not k.startswith(HEAD))
    assert not torch.equal(first_step[HEAD[0] + "weight"][:3], source[HEAD[0] + "weight"][:3])
    report = json.loads((run / "init.json").read_text())
    assert report["source"] == BUILT_IN and len(report["reinitialised"]) == 4

    from export.cli import main as export_main
    from training.cli import eval_main
    from zoo.cli import card_main

    model_dir = tmp_path / "models" / "cracks"
    eval_json = model_dir / "eval.json"
    assert eval_main([str(run / "last.pt"), "--data-root", str(data), "--out", str(eval_json),
                      "--workers", "0", "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    assert json.loads(eval_json.read_text())["metrics"]["classes"] == CLASSES
    assert export_main([str(run / "last.pt"), "--out", str(model_dir)]) == 0
    config = json.loads((model_dir / "config.json").read_text())
    assert config["classes"] == CLASSES and config["num_classes"] == 3
    assert config["dataset"] == "cracks" and config["model_id"] == "lraspp_mbv3_cracks_cpg"
    segmenter = zoo.load(model_dir)
    mask = segmenter.predict(np.zeros((40, 50, 3), np.uint8))
    assert mask.shape == (40, 50) and int(mask.max()) < 3
    assert card_main([str(model_dir)]) == 0
    card = (model_dir / "README.md").read_text()
    assert all(name in card for name in CLASSES)

    from demo import models as demo_models
    from demo.handlers import segment

    monkeypatch.setattr(demo_models, "_ALLOWED", {str(model_dir)})
    image = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)).save(image)
    _, shares, _, _ = segment(str(image), str(model_dir), "onnx")
    assert set(shares["class"]) <= set(CLASSES)


def test_hf_dataset_trains(tmp_path: Path, capsys) -> None:
    data = make_hf_dataset(tmp_path / "hf")
    argv = ["--arch", "lraspp_mbv3", "--data-root", str(data), "--out", str(tmp_path / "run"),
            "--loss", "ce", "pretrained_backbone=false", "crop_size=12,16", *QUICK]  # fmt: skip
    assert train_main([*argv, "--no-progress"]) == 0, capsys.readouterr().err
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert any(json.loads(line).get("iteration") == 2 for line in lines)


def test_custom_recipe_from_the_data(tmp_path: Path, capsys) -> None:
    data = make_folder_dataset(tmp_path / "d", n_train=24, n_val=2, size=(300, 700))
    assert train_main(["--arch", "lraspp_mbv3", "--data-root", str(data), "--print-recipe"]) == 0
    recipe = json.loads(capsys.readouterr().out)
    assert recipe["crop_size"] == [288, 512]  # 300 -> multiple of 16; 700 -> capped at 512
    assert recipe["iterations"] == 200  # 50 epochs x 24 images / batch 8 = 150 -> minimum 200
    assert recipe["dataset"] == "custom" and recipe["cpg_lambda"] == 1.0
    not_a_dataset = ["--arch", "lraspp_mbv3", "--data-root", str(tmp_path), "--print-recipe"]
    assert train_main(not_a_dataset) == 2
    assert "not a dataset of your own" in capsys.readouterr().err


def test_cpg_and_boundary_metrics_for_two_classes() -> None:
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[:, :, 8:] = 1
    perfect = torch.stack([1 - target, target], 1).float() * 20 - 10
    assert float(CPGLoss()(perfect, target)) < 1e-6
    assert float(CPGLoss()(torch.zeros(1, 2, 16, 16), target)) > 0.01
    _total, terms = SegmentationObjective(1.0)({"out": perfect}, target)
    assert float(terms["cpg"]) < 1e-6
    metrics = SegmentationMetrics(2, boundary_tolerance=1)
    metrics.update(target, target)
    shifted = target.clone()
    shifted[:, :, 6:8] = 1  # the edge moves 2 px: outside a 1 px tolerance
    metrics_shifted = SegmentationMetrics(2, boundary_tolerance=1)
    metrics_shifted.update(shifted, target)
    assert metrics.compute()["mBF"] == 1.0
    assert metrics_shifted.compute()["mBF"] == 0.0


def test_iterations_override_rescales_what_derives_from_it(tmp_path: Path, capsys) -> None:
    data = make_folder_dataset(tmp_path / "d", n_train=24, n_val=2, size=(64, 64))
    argv = ["--arch", "lraspp_mbv3", "--data-root", str(data), "--print-recipe", "iterations=150"]
    assert train_main(argv) == 0
    recipe = json.loads(capsys.readouterr().out)
    assert recipe["iterations"] == 150 and recipe["warmup_iters"] == 15
    assert recipe["eval_interval"] == 30 and recipe["checkpoint_interval"] == 30
