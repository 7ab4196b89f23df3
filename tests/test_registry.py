"""Registry ids, the architecture and dataset tables, and the one lookup helper."""

from __future__ import annotations

import itertools
import math

import pytest

from zoo.archs import Architecture, get_architecture
from zoo.cli import main as zoo_main
from zoo.datasets import DATASETS, DatasetInfo, get_dataset_info
from zoo.lookup import lookup
from zoo.registry import ARCHS, HUB_NAMESPACE_ENV, get_spec, list_models

EXPECTED_CLASSES = {"cityscapes": 19, "cocostuff": 171, "ade20k": 150, "synthcity": 19}
CROPS = {"cityscapes": (512, 1024), "cocostuff": (512, 512), "ade20k": (512, 512)}


def test_eighteen_ids_named_arch_dataset_loss(monkeypatch) -> None:
    monkeypatch.delenv(HUB_NAMESPACE_ENV, raising=False)
    parts = list(
        itertools.product(
            ("deeplabv3_r50", "hrnetv2_w48_ocr", "lraspp_mbv3"), CROPS, ("ce", "cpg")
        )
    )
    expected = {"_".join(triple): triple for triple in parts}
    assert list_models() == sorted(expected)
    for model_id, (arch, dataset, loss) in expected.items():
        spec = get_spec(model_id)
        assert (spec.id, spec.arch, spec.dataset, spec.loss) == (model_id, arch, dataset, loss)
        assert spec.num_classes == EXPECTED_CLASSES[dataset]
        assert spec.hub_repo == f"cpg-zoo/{model_id}"
        assert spec.input_size == CROPS[dataset]


def test_an_unpublished_arch_has_no_registry_id_but_a_title() -> None:
    assert not get_architecture("deeplabv3_mbv3").published
    assert not list_models("deeplabv3_mbv3*")
    assert ARCHS["deeplabv3_mbv3"] == "DeepLabv3-MobileNetV3-Large"  # for its cards


def test_list_models_filters() -> None:
    assert list_models("lraspp_mbv3_cityscapes_cpg") == ["lraspp_mbv3_cityscapes_cpg"]
    assert len(list_models("*_cpg")) == 9
    assert len(list_models("ade20k")) == 6
    assert list_models("nothing-like-this") == []


def test_hub_namespace_can_be_overridden(monkeypatch) -> None:
    monkeypatch.setenv(HUB_NAMESPACE_ENV, "my-org")
    assert get_spec("lraspp_mbv3_ade20k_ce").hub_repo == "my-org/lraspp_mbv3_ade20k_ce"


@pytest.mark.parametrize("name", sorted(EXPECTED_CLASSES))
def test_class_counts(name: str) -> None:
    assert get_dataset_info(name).num_classes == EXPECTED_CLASSES[name]


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_class_and_palette_tables(name: str) -> None:
    info = get_dataset_info(name)
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


def test_label_tables_follow_the_official_ids() -> None:
    """Raw annotation value of a few train ids, from the datasets' own documentation."""
    cityscapes = get_dataset_info("cityscapes").raw_ids  # cityscapesscripts labels.py
    assert (cityscapes[0], cityscapes[13], cityscapes[18]) == (7, 26, 33)  # road, car, bicycle
    assert get_dataset_info("synthcity").raw_ids == cityscapes
    coco = get_dataset_info("cocostuff").raw_ids  # stuffthingmaps: 11 thing ids never used
    assert (coco[0], coco[10], coco[11], coco[79], coco[80], coco[170]) == (
        0, 10, 12, 89, 91, 181
    )  # fmt: skip
    ade = get_dataset_info("ade20k").raw_ids  # objectInfo150: 0 is "other"
    assert (ade[0], ade[149]) == (1, 150)


def test_a_dataset_row_is_enough_for_its_layout() -> None:
    """A new dataset in a known layout family: its layout and label table come from the row."""
    from training.data.layouts import layout_of

    toy = DatasetInfo("toy", "Toy", ("a", "b"), ((0, 0, 0), (9, 9, 9)), layout="ade20k",
                      raw_ids=(5, 9))  # fmt: skip
    layout = layout_of(toy)
    assert (layout.name, layout.family, layout.image_dir) == ("toy", "ade20k", "images/{split}")
    assert (layout.lut[5], layout.lut[9], layout.lut[0], layout.lut[6]) == (0, 1, 255, 255)
    with pytest.raises(ValueError, match="unknown layout 'kitti' of dataset toy"):
        layout_of(DatasetInfo("toy", "Toy", ("a",), ((0, 0, 0),), layout="kitti"))


def test_rows_that_contradict_themselves_are_refused() -> None:
    with pytest.raises(ValueError, match="dataset bad: 1 colours for 2 classes"):
        DatasetInfo("bad", "Bad", ("a", "b"), ((0, 0, 0),))
    with pytest.raises(ValueError, match="dataset bad: 3 raw ids for 2 classes"):
        DatasetInfo("bad", "Bad", ("a", "b"), ((0, 0, 0), (1, 1, 1)), raw_ids=(1, 2, 3))
    with pytest.raises(ValueError, match="arch bad: set exactly one of torchvision and builder"):
        Architecture("bad", "Bad", False, (), "", torchvision="x", builder="m:f")


def test_lookup_suggests_close_names_then_lists_all() -> None:
    table = {"alpha": 1, "beta": 2}
    assert lookup(table, "beta", "letter") == 2
    with pytest.raises(ValueError) as error:
        lookup(table, "alpah", "letter", where="in the test")
    assert str(error.value) == (
        "unknown letter 'alpah' in the test (did you mean alpha?); valid letters: alpha, beta"
    )
    with pytest.raises(ValueError, match=r"unknown letter \['x'\]; valid letters: alpha, beta"):
        lookup(table, ["x"], "letter")  # type: ignore[arg-type]  # unhashable: same error


def _build_model(name: str) -> object:
    from zoo.models import build_model

    return build_model(name, 3)


def _get_layout(name: str) -> object:
    from training.data.layouts import get_layout

    return get_layout(name)


def _get_recipe(name: str) -> object:
    from training.recipes import get_recipe

    return get_recipe(name)


@pytest.mark.parametrize(
    ("call", "name", "message"),
    [
        (get_spec, "lraspp_mbv3_kitti_cpg", "unknown model id 'lraspp_mbv3_kitti_cpg' (did you "
         "mean lraspp_mbv3_ade20k_cpg"),
        (get_dataset_info, "cityscape", "unknown dataset 'cityscape' (did you mean cityscapes?); "
         "valid datasets: ade20k, cityscapes, cocostuff, synthcity"),
        (get_architecture, "hrnet", "unknown arch 'hrnet'; valid archs: deeplabv3_mbv3, "
         "deeplabv3_r50, hrnetv2_w48_ocr, lraspp_mbv3"),
        (_build_model, "lraspp", "unknown arch 'lraspp'"),
        (_get_layout, "ade20", "unknown dataset 'ade20' (did you mean ade20k?); valid "
         "datasets: ade20k, cityscapes, cocostuff, synthcity"),
        (_get_recipe, "lraspp_mbv3_synthcity", "unknown recipe 'lraspp_mbv3_synthcity' (did "
         "you mean lraspp_mbv3_synthcity_ce, lraspp_mbv3_synthcity_cpg"),
    ],
)  # fmt: skip
def test_unknown_names_are_answered_alike(call, name: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        call(name)
    assert str(error.value).startswith(message)
    assert "; valid " in str(error.value)


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
