"""The Gradio demo in this process: `app.py` (the page and the CLI) and the demo's model
choice, without a server. Served tests: `test_app_served.py`; cache files: `test_app_cache.py`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers_app import EXAMPLES, ROOT, build_test_model
from PIL import Image

from bench.app_server import free_port
from tests.helpers_hub import fake_hub_cache

pytest.importorskip("gradio")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_model(tmp_path_factory.getbasetemp())


def test_import_builds_nothing_and_demo_builds() -> None:
    import app

    assert app.DEFAULT_MODEL == "lraspp_mbv3_synthcity_cpg"
    demo = app.build_demo()
    assert demo.__class__.__name__ == "Blocks"
    names = {dep.api_name for dep in demo.fns.values()}
    assert {"segment", "load_model"} <= names
    stubs = [*ROOT.glob("app.pyi"), *(ROOT / "demo").glob("*.pyi")]
    assert not stubs, f"a gr.Component subclass made Gradio write {stubs}"


def test_overlay_is_redrawn_from_the_shown_mask(model_dir: Path) -> None:
    import app
    import zoo
    from demo.handlers import draw_overlay

    app.build_demo(str(model_dir))  # lists the model
    segmenter = zoo.load(model_dir, backend="onnx")
    mask = segmenter.mask_image(segmenter.predict(EXAMPLES[0]))
    update = draw_overlay(str(EXAMPLES[0]), mask, (str(model_dir), "onnx"), 0.3)
    layers = update.value["annotations"]
    assert layers and len(layers) == len(np.unique(np.asarray(mask)))
    assert draw_overlay(None, None, None, 0.3).value is None
    # The legend: the name and palette colour of each class present, from config.json.
    config = json.loads((model_dir / "config.json").read_text())
    expected = {
        config["classes"][i]: "#{:02x}{:02x}{:02x}".format(*config["palette"][i])
        for i in np.unique(np.asarray(mask))
    }
    assert update.color_map == expected
    assert sorted(layer["label"] for layer in layers) == sorted(expected)


def test_main_reports_an_unavailable_model(tmp_path: Path, capsys) -> None:
    import app

    assert app.main(["--model", str(tmp_path / "missing"), "--port", str(free_port())]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_examples_ship() -> None:
    assert len(EXAMPLES) == 3
    for path in EXAMPLES:
        assert path.stat().st_size < 300_000
        with Image.open(path) as image:
            assert image.size == (512, 256) and image.mode == "RGB"


def test_dropdown_offers_the_models_that_load_now(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17.5: the `--model` directory, the built-in model and the models in the local
    Hub cache (registry repo -> its id, other repos -> hf-hub:), each loadable offline; not
    the registry ids that are not cached, nor cached repos without a runnable file."""
    from huggingface_hub import constants

    from demo.models import MODELS, model_choices

    cache = tmp_path / "hub"
    runnable = {name: model_dir / name for name in ("config.json", "model.onnx")}
    fake_hub_cache(cache, "cpg-zoo/lraspp_mbv3_cityscapes_cpg", runnable)
    fake_hub_cache(cache, "someone/street-model", runnable)
    fake_hub_cache(cache, "someone/card-only", {"config.json": model_dir / "config.json"})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    choices = model_choices(str(model_dir))
    assert choices == [
        str(model_dir),
        "lraspp_mbv3_synthcity_cpg",
        "lraspp_mbv3_cityscapes_cpg",
        "hf-hub:someone/street-model",
    ]
    for name in choices:
        assert MODELS.get(name, "onnx").num_classes == 19, name


def test_about_text_comes_from_the_model_files(model_dir: Path, tmp_path: Path) -> None:
    import zoo
    from zoo.eval_record import describe_model

    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    build = {"description": "Trained on painted toy streets for this test."}
    evaluation = {"split": "val", "metrics": {"mIoU": 0.25}, "build": build}
    (model / "eval.json").write_text(json.dumps(evaluation))
    about = describe_model(zoo.load(model, backend="onnx"))
    assert about == (
        "`lraspp_mbv3` trained on **SynthCity** with the `ce` loss; val mIoU 25.0% "
        "(its eval.json). Trained on painted toy streets for this test."
    )


def test_demo_backends_come_from_the_table_and_precision_is_passed(monkeypatch) -> None:
    import torch

    import app
    from demo import models
    from zoo.backends import BACKENDS as TABLE

    assert ("auto", *TABLE) == models.BACKENDS and app.parse_args([]).backend == "auto"
    monkeypatch.setattr(models, "PRECISION", "bf16")
    segmenter = models._load_for_demo(app.DEFAULT_MODEL, "torch")
    assert segmenter.backend.dtype == torch.bfloat16


@pytest.mark.parametrize("port", ["0", "-1", "99999"])
def test_main_refuses_a_port_out_of_range(port: str, capsys) -> None:
    import app

    with pytest.raises(SystemExit) as exit_info:
        app.main(["--port", port])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "out of range: use 1-65535" in err
    assert "Traceback" not in err


def test_main_reports_a_port_in_use(capsys) -> None:
    import socket

    import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert app.main(["--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"zoo demo: error: cannot serve on 127.0.0.1:{port}" in err
    assert "port is in use" in err and "Traceback" not in err


@pytest.mark.parametrize("concurrency", ["0", "-2"])
def test_main_refuses_a_concurrency_below_one(concurrency: str, capsys) -> None:
    import app

    with pytest.raises(SystemExit) as exit_info:  # was: served, and every request hung
        app.main(["--concurrency", concurrency, "--port", str(free_port())])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"--concurrency: must be >= 1, got {concurrency}" in err
