"""Model cards: committed registry cards match the generator; numbers only from eval.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load

from zoo.cards import (
    BIBTEX,
    generate_registry_cards,
    measured_metrics,
    registry_card,
    write_card,
)
from zoo.cli import card_main as main
from zoo.config import CARD_NAME, EVAL_NAME, ModelConfig
from zoo.registry import HUB_NAMESPACE_ENV, MODELS


def planned_recipe(model_id: str) -> dict:
    from training.recipes import get_recipe

    return get_recipe(model_id).to_dict()


COMMITTED = Path(__file__).resolve().parents[1] / "model_cards"
EVAL = {
    "dataset": "cityscapes",
    "split": "val",
    "metrics": {
        "mIoU": 0.6543,
        "pixel_acc": 0.9321,
        "mBF": 0.5012,
        "boundary_tolerance_px": 3,
        "per_class_iou": [0.9, 0.8, None] + [0.5] * 16,
    },
    "command": "zoo eval runs/x/best.pt --split val",
    "git_commit": "abc1234",
}


def _model_dir(tmp_path: Path, eval_data: dict | None) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    config = ModelConfig.for_dataset(
        "lraspp_mbv3",
        "cityscapes",
        model_id="lraspp_mbv3_cityscapes_cpg",
        loss={"name": "cpg", "lambda": 1.0, "kernel_size": 3},
        recipe={"iterations": 80000, "crop_size": [512, 1024], "cpg_lambda": 1.0},
    )
    config.save(directory)
    if eval_data is not None:
        (directory / EVAL_NAME).write_text(json.dumps(eval_data))
    return directory


def _results(card: ModelCard) -> dict[str, float]:
    return {r.metric_type: r.metric_value for r in card.data.eval_results or []}


def test_committed_cards_match_the_generator(tmp_path, monkeypatch):
    monkeypatch.delenv(HUB_NAMESPACE_ENV, raising=False)  # cards name the default namespace
    generate_registry_cards(tmp_path, recipe_of=planned_recipe)
    expected = {p.parent.name: p.read_text() for p in tmp_path.glob(f"*/{CARD_NAME}")}
    committed = {p.parent.name: p.read_text() for p in COMMITTED.glob(f"*/{CARD_NAME}")}
    assert sorted(expected) == sorted(MODELS)
    stale = sorted(k for k in expected if committed.get(k) != expected[k])
    extra = sorted(set(committed) - set(expected))
    assert not stale and not extra, (
        f"model_cards/ out of date (stale: {stale}, extra: {extra}): "
        "run `zoo card --all --out model_cards` and commit"
    )


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_registry_cards_state_no_metric(model_id):
    card = ModelCard(str(registry_card(model_id, planned_recipe(model_id))))
    assert card.data.eval_results is None
    assert "model-index" not in card.data.to_dict()
    assert "**Not trained yet.**" in card.text
    assert not re.search(r"\d+\.\d+ ?%", card.text), "no percentages without eval.json"
    spec = MODELS[model_id]
    assert card.data.license == "apache-2.0"
    assert card.data.library_name == "cpg-zoo"
    assert card.data.pipeline_tag == "image-segmentation"
    assert {"semantic-segmentation", "onnx", spec.arch, spec.dataset} <= set(card.data.tags)
    assert ("cpg-loss" in card.data.tags) == (spec.loss == "cpg")
    assert card.data.datasets == [spec.dataset]
    assert BIBTEX in card.text and "2404.06704" in card.text


def test_model_dir_card_carries_eval_metrics(tmp_path):
    directory = _model_dir(tmp_path, EVAL)
    path = write_card(directory)
    card = ModelCard.load(path)
    assert _results(card) == {"mIoU": 0.6543, "pixel_accuracy": 0.9321, "boundary_f": 0.5012}
    for result in card.data.eval_results:
        assert result.dataset_type == "cityscapes" and result.dataset_split == "val"
        assert result.task_type == "image-segmentation"
    index = metadata_load(path)["model-index"]
    assert index[0]["name"] == "lraspp_mbv3_cityscapes_cpg"
    metrics = index[0]["results"][0]["metrics"]
    assert {m["type"]: m["value"] for m in metrics} == _results(card)
    # The body shows the same numbers (in %), and nothing that was not measured.
    assert "| mIoU | 65.43 |" in card.text and "| pixel accuracy | 93.21 |" in card.text
    assert "| boundary F | 50.12 |" in card.text
    assert "boundary IoU" not in card.text and "mean class accuracy" not in card.text
    assert "| class2 |" not in card.text  # class names come from the config
    assert "zoo eval runs/x/best.pt" in card.text
    # Usage: zoo.load and plain ONNX Runtime with the config's normalisation.
    assert 'zoo.load("lraspp_mbv3_cityscapes_cpg")' in card.text
    assert "np.array([0.485, 0.456, 0.406]" in card.text and "InferenceSession" in card.text
    assert "`cpg_lambda`" in card.text and "kernel_size=3" in card.text


def test_card_never_states_unmeasured_metrics(tmp_path):
    partial = {"split": "val", "metrics": {"mIoU": 0.5, "pixel_acc": float("nan")}}
    card = ModelCard.load(write_card(_model_dir(tmp_path, partial)))
    assert _results(card) == {"mIoU": 0.5}
    assert set(_results(card)) <= set(measured_metrics(partial))
    assert "pixel accuracy" not in card.text


@pytest.mark.parametrize("eval_data", [None, {"split": "val"}])
def test_card_without_metrics(tmp_path, eval_data):
    card = ModelCard.load(write_card(_model_dir(tmp_path, eval_data)))
    assert card.data.eval_results is None
    assert "model-index" not in metadata_load(tmp_path / "model" / CARD_NAME)
    expected = "Not trained yet" if eval_data is None else "holds no measured metric"
    assert expected in card.text


def test_registry_card_without_a_recipe_shows_what_the_registry_knows():
    card = registry_card("deeplabv3_r50_ade20k_ce")
    assert "from the registry" in card.text and "| `crop_size` | 512 x 512 |" in card.text
    assert "`lr`" not in card.text  # no invented recipe values


def test_cli_with_the_training_recipes(tmp_path):
    assert main(["--all", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "lraspp_mbv3_ade20k_cpg" / CARD_NAME).read_text()
    assert "from `training.recipes`" in text and "| `iterations` | `160000` |" in text


def test_cli(tmp_path, capsys):
    assert main(["--all", "--out", str(tmp_path / "cards")]) == 0
    assert len(list((tmp_path / "cards").glob(f"*/{CARD_NAME}"))) == len(MODELS)
    directory = _model_dir(tmp_path, EVAL)
    assert main([str(directory)]) == 0
    assert (directory / CARD_NAME).is_file()
    assert main([str(tmp_path / "missing")]) == 2
    assert "zoo card:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([])


def test_build_record_becomes_a_rebuild_section(tmp_path):
    build = {"command": "ITERATIONS=5 bash scripts/x.sh", "description": "A demo model.",
             "git_commit": "abc123"}  # fmt: skip
    card = ModelCard.load(write_card(_model_dir(tmp_path, EVAL | {"build": build})))
    assert "## Rebuilding this model" in card.text
    assert "ITERATIONS=5 bash scripts/x.sh" in card.text and "`abc123`" in card.text
    assert "A demo model." in card.text


def test_card_of_an_unpublished_model_shows_local_usage(tmp_path):
    directory = _model_dir(tmp_path, EVAL)
    config = ModelConfig.load(directory)
    config.model_id = "my_model"  # not a registry id, no repo given
    config.save(directory)
    text = ModelCard.load(write_card(directory)).text
    assert 'zoo.load("path/to/my_model")' in text and "hf_hub_download" not in text
    assert "hf-hub:" not in text
