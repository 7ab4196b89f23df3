"""Registry ids and dataset metadata tables."""

from __future__ import annotations

import itertools
import math

import pytest

from zoo.cli import main as zoo_main
from zoo.datasets import DATASETS, get_dataset_info
from zoo.registry import HUB_NAMESPACE_ENV, get_spec, list_models

EXPECTED_CLASSES = {"cityscapes": 19, "cocostuff": 171, "ade20k": 150, "synthcity": 19}


def test_eighteen_ids_named_arch_dataset_loss() -> None:
    ids = list_models()
    assert len(ids) == 18 == len(set(ids))
    for model_id in ids:
        spec = get_spec(model_id)
        assert model_id == f"{spec.arch}_{spec.dataset}_{spec.loss}"
        assert spec.loss in {"ce", "cpg"}
        assert spec.num_classes == EXPECTED_CLASSES[spec.dataset]
        assert spec.hub_repo.endswith(f"/{model_id}")
        assert len(spec.input_size) == 2


def test_list_models_filters() -> None:
    assert list_models("lraspp_mbv3_cityscapes_cpg") == ["lraspp_mbv3_cityscapes_cpg"]
    assert len(list_models("*_cpg")) == 9
    assert len(list_models("ade20k")) == 6
    assert list_models("nothing-like-this") == []


def test_hub_namespace_can_be_overridden(monkeypatch) -> None:
    monkeypatch.setenv(HUB_NAMESPACE_ENV, "my-org")
    assert get_spec("lraspp_mbv3_ade20k_ce").hub_repo == "my-org/lraspp_mbv3_ade20k_ce"


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_class_and_palette_tables(name: str) -> None:
    info = get_dataset_info(name)
    assert info.num_classes == EXPECTED_CLASSES[name]
    assert len(info.palette) == info.num_classes
    assert len(set(info.classes)) == info.num_classes, "duplicate class names"
    assert len(set(info.palette)) == info.num_classes, "duplicate colours"
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in info.palette)
    # Distinct to the eye, not only as tuples (Cityscapes' official colours: >= 20 apart).
    closest = min(math.dist(a, b) for a, b in itertools.combinations(info.palette, 2))
    official = info.palette == get_dataset_info("cityscapes").palette
    assert closest >= (20 if official else 40), closest
    assert info.ignore_index == 255
    assert len(info.mean) == len(info.std) == 3


def test_official_orders_and_colours() -> None:
    cityscapes = get_dataset_info("cityscapes")
    assert cityscapes.classes[0] == "road" and cityscapes.classes[-1] == "bicycle"
    assert cityscapes.palette[0] == (128, 64, 128)
    assert cityscapes.palette[cityscapes.classes.index("car")] == (0, 0, 142)
    ade = get_dataset_info("ade20k").classes
    assert (ade[0], ade[1], ade[2], ade[12], ade[149]) == (
        "wall", "building", "sky", "person", "flag"
    )  # fmt: skip
    coco = get_dataset_info("cocostuff").classes
    assert (coco[0], coco[79], coco[80], coco[170]) == ("person", "toothbrush", "banner", "wood")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: get_spec("lraspp_mbv3_kitti_cpg"), "valid ids: deeplabv3_r50_ade20k_ce"),
        (lambda: get_dataset_info("kitti"), "valid datasets: ade20k, cityscapes, cocostuff"),
    ],
)
def test_unknown_names_list_the_valid_ones(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_zoo_list_cli(capsys) -> None:
    assert zoo_main(["list", "*_cityscapes_cpg"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == [
        "deeplabv3_r50_cityscapes_cpg", "hrnetv2_w48_ocr_cityscapes_cpg",
        "lraspp_mbv3_cityscapes_cpg",
    ]  # fmt: skip
    assert zoo_main(["list", "nothing-like-this"]) == 1
    assert zoo_main(["frobnicate"]) == 2


def test_a_missing_extra_names_the_pip_command(monkeypatch, capsys) -> None:
    """A base install (no gradio) asked for `zoo demo`: a one-line hint, not a traceback."""
    import sys

    monkeypatch.delitem(sys.modules, "app", raising=False)
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` fails
    assert zoo_main(["demo"]) == 2
    assert "pip install 'cpg-zoo[demo]'" in capsys.readouterr().err
