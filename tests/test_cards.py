"""Model cards: committed registry cards match the generator; numbers only from eval.json."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load

import zoo
from zoo import card_parts
from zoo.card_parts import BIBTEX
from zoo.cards import (
    generate_registry_cards,
    registry_card,
    repo_card_text,
    write_card,
)
from zoo.cli import card_main as main
from zoo.config import ModelConfig
from zoo.modelfiles import CARD_NAME, EVAL_NAME
from zoo.registry import HUB_NAMESPACE_ENV, MODELS


def planned_recipe(model_id: str) -> dict:
    from training.recipes import get_recipe

    return get_recipe(model_id).to_dict()


COMMITTED = Path(__file__).resolve().parents[1] / "model_cards"
BUILT_IN_ID = "lraspp_mbv3_synthcity_cpg"
BUILT_IN = Path(__file__).resolve().parents[1] / "zoo" / "assets" / "models" / BUILT_IN_ID
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


def test_the_train_command_of_an_untrained_card_runs(tmp_path, capsys):
    """The card's `zoo train` command, DATA an empty folder: it gets as far as the dataset
    check (was: '--data-root is required to train'), and its export reads the run's file."""
    import shlex

    from training.cli import train_main

    model_id = "lraspp_mbv3_cityscapes_cpg"
    text = str(registry_card(model_id, planned_recipe(model_id)))
    train = re.search(r"`(zoo train [^`]+)`", text)
    export = re.search(r"`(zoo export [^`]+)`", text)
    assert train and export, "the card gives no train / export command"
    argv = shlex.split(train.group(1).replace("DATA", str(tmp_path / "data")))[2:]
    (tmp_path / "data").mkdir()
    assert train_main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"expected images under {tmp_path / 'data' / 'leftImg8bit'}" in err, err
    out = argv[argv.index("--out") + 1]
    assert shlex.split(export.group(1))[2].startswith(out + "/")


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
    assert [(m["type"], m["name"], m["value"]) for m in metrics] == [
        ("mIoU", "mIoU", 0.6543),
        ("pixel_accuracy", "pixel accuracy", 0.9321),
        ("boundary_f", "boundary F", 0.5012),
    ]
    # The body shows the same numbers (in %), and nothing that was not measured.
    assert "| mIoU | 65.43 |" in card.text and "| pixel accuracy | 93.21 |" in card.text
    assert "| boundary F | 50.12 |" in card.text
    assert "boundary IoU" not in card.text and "mean class accuracy" not in card.text
    assert "| class2 |" not in card.text  # class names come from the config
    assert "zoo eval runs/x/best.pt" in card.text
    # Usage: this directory (not the registry id's Hub repo), with the config's normalisation.
    assert 'zoo.load("model")' in card.text and 'path = "model/model.onnx"' in card.text
    assert "np.array([0.485, 0.456, 0.406]" in card.text and "InferenceSession" in card.text
    assert "`cpg_lambda`" in card.text and "kernel_size=3" in card.text


def test_card_never_states_unmeasured_metrics(tmp_path):
    partial = {"split": "val", "metrics": {"mIoU": 0.5, "pixel_acc": float("nan")}}
    card = ModelCard.load(write_card(_model_dir(tmp_path, partial)))
    assert _results(card) == {"mIoU": 0.5}
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


def test_card_of_a_model_without_a_repo_shows_local_usage(tmp_path):
    directory = _model_dir(tmp_path, EVAL)
    config = ModelConfig.load(directory)
    config.model_id = "my_model"  # not a registry id, no repo given
    config.save(directory)
    text = ModelCard.load(write_card(directory)).text
    assert 'zoo.load("model")' in text and "hf_hub_download" not in text
    assert "hf-hub:" not in text


ZOO_LINE = "Part of the cpg-zoo model zoo."


@pytest.mark.parametrize(
    ("model_id", "dataset", "zoo_model"),
    [
        ("lraspp_mbv3_cityscapes_cpg", "cityscapes", True),  # a registry id
        ("lraspp_mbv3_mystreets_cpg", "mystreets", False),  # a user's own data
        ("lraspp_mbv3_cityscapes_cpg", "mystreets", False),  # a registry id's name, other data
    ],
)
def test_only_registry_models_are_part_of_the_zoo(tmp_path, model_id, dataset, zoo_model):
    """A card of a model trained on a user's own data said "Part of the cpg-zoo model zoo"."""
    directory = _model_dir(tmp_path, EVAL)
    config = ModelConfig.load(directory)
    config.model_id, config.dataset = model_id, dataset
    config.save(directory)
    for card in (write_card(directory).read_text(), repo_card_text(directory, "me/streets")):
        assert (ZOO_LINE in card) == zoo_model
        assert ("Made with cpg-zoo." in card) != zoo_model


def test_registry_and_built_in_cards_are_part_of_the_zoo():
    assert ZOO_LINE in (BUILT_IN / CARD_NAME).read_text()
    assert all(ZOO_LINE in p.read_text() for p in COMMITTED.glob(f"*/{CARD_NAME}"))


def test_card_with_a_repo_loads_from_that_repo(tmp_path):
    directory = _model_dir(tmp_path, EVAL)
    text = ModelCard.load(write_card(directory, repo_id="my-org/street-model")).text
    assert 'zoo.load("hf-hub:my-org/street-model")' in text
    assert 'hf_hub_download("my-org/street-model", "model.onnx")' in text


def test_card_of_a_directory_loads_that_directory(tmp_path, monkeypatch):
    """Issue 17.4: `zoo card models/quick` (model id of the built-in model) wrote "shipped in
    the cpg-zoo package: loads offline by name" and usage that loads the built-in weights."""
    monkeypatch.chdir(tmp_path)
    quick = Path("models/quick")
    quick.mkdir(parents=True)
    ModelConfig.for_dataset("lraspp_mbv3", "synthcity", model_id=BUILT_IN_ID).save(quick)
    (quick / "model.onnx").write_bytes(b"onnx")
    for argument in ("models/quick", str(tmp_path / "models" / "quick")):
        assert main([argument]) == 0
        text = (quick / CARD_NAME).read_text()
        assert 'model = zoo.load("models/quick")' in text
        assert 'path = "models/quick/model.onnx"' in text
        assert "package" not in text and "PACKAGED_MODELS_DIR" not in text
    # A staging copy of a model that will ship in the package (scripts/build_default_model.sh)
    assert main(["models/quick", "--builtin"]) == 0
    assert f'model = zoo.load("{BUILT_IN_ID}")' in (quick / CARD_NAME).read_text()
    # The package's own directory is loaded by name.
    built_in = ModelCard.load(BUILT_IN / CARD_NAME).text
    assert f'model = zoo.load("{BUILT_IN_ID}")' in built_in
    assert f'str(PACKAGED_MODELS_DIR / "{BUILT_IN_ID}" / "model.onnx")' in built_in


def test_repo_card_replaces_a_generated_local_card_and_writes_nothing(tmp_path):
    """A push uploads a card loading from its repo in place of a missing card or of the one
    `zoo card DIR` wrote (it loads DIR), keeps a hand-edited one, and writes nothing."""
    directory = _model_dir(tmp_path, EVAL)
    text = repo_card_text(directory, "my-org/first")  # no card yet
    assert text is not None and 'zoo.load("hf-hub:my-org/first")' in text
    assert not (directory / CARD_NAME).exists()
    local = write_card(directory).read_text()  # the local card of `zoo card DIR`
    text = repo_card_text(directory, "my-org/street-model")
    assert text is not None and 'zoo.load("hf-hub:my-org/street-model")' in text
    assert (directory / CARD_NAME).read_text() == local
    edited = local + "\nNotes by the author.\n"
    (directory / CARD_NAME).write_text(edited)
    assert repo_card_text(directory, "my-org/street-model") is None
    assert (directory / CARD_NAME).read_text() == edited


def test_card_of_a_torch_only_directory_has_no_onnx_snippet(tmp_path):
    directory = _model_dir(tmp_path, EVAL)
    (directory / "model.safetensors").write_bytes(b"weights")
    text = ModelCard.load(write_card(directory)).text
    assert "InferenceSession" not in text and "cpg-zoo[torch]" in text


# An absolute POSIX or Windows path: a slash (or drive) starting a token, then a name.
ABSOLUTE_PATH = re.compile(r"(?:^|[\s`(\"'=])(?:[A-Za-z]:)?[/\\][\w.-]+[/\\]")


def test_card_states_no_path_of_the_machine(tmp_path, monkeypatch):
    """Issue 17.4: the card embedded local absolute paths (checkpoint, commands)."""
    monkeypatch.chdir(tmp_path)
    evaluation = EVAL | {
        "command": "zoo eval /home/alice/runs/x/best.pt --data-root /data/cityscapes",
        "checkpoint": str(tmp_path / "runs" / "x" / "best.pt"),
        "export": EXPORT,
        "build": {"command": "CHECKPOINT=/home/alice/last.pt bash scripts/x.sh",
                  "description": "Built from C:\\Users\\alice\\data."},
    }  # fmt: skip
    directory = _model_dir(tmp_path, evaluation)
    config = ModelConfig.load(directory)
    config.recipe["data_root"] = "/data/cityscapes"
    config.save(directory)
    text = write_card(tmp_path / "model").read_text()
    for machine_path in (str(tmp_path), "/home/alice", "/data/cityscapes", "alice"):
        assert machine_path not in text
    assert not ABSOLUTE_PATH.findall(text), ABSOLUTE_PATH.findall(text)
    # Paths under the current directory become relative, others keep only their last name.
    assert "| checkpoint | `runs/x/best.pt` |" in text
    assert "`zoo eval .../best.pt --data-root .../cityscapes`" in text
    assert "CHECKPOINT=.../last.pt bash scripts/x.sh" in text
    assert "| `data_root` | `.../cityscapes` |" in text


EXPORT = {
    "checkpoint": "/home/alice/runs/x/best.pt",
    "command": "zoo export /home/alice/runs/x/best.pt --out /home/alice/models/x",
    "date": "2026-12-02T06:32:04Z",
    "machine": {"platform": "Linux-6.18-x86_64-with-glibc2.36", "cpus": 2},
    "versions": {"torch": "2.4.0", "onnxruntime": "1.18.0"},
    "exporter": "torch.onnx.export(dynamo=False)",
    "opset": 18,
    "calibration": {"folder": "/data/cityscapes/val", "images": 16},
    "parity": {
        "fp32": {"cases": [{"max_abs_diff": 1.0e-05, "argmax_agreement": 1.0},
                           {"max_abs_diff": 3.29e-05, "argmax_agreement": 1.0}],
                 "passed": True},
        "int8": {"argmax_agreement": 0.992, "cases": [{"max_abs_diff": 0.41}] * 2,
                 "miou_fp32": 0.61, "miou_int8": 0.605, "passed": True},
    },
    "files": {"config.json": {"bytes": 2617}, "model.safetensors": {"bytes": 13016584},
              "model.onnx": {"bytes": 12883144}},
    "timings": {"total_s": 3.613},
}  # fmt: skip


def test_export_report_is_a_short_table(tmp_path):
    """Issue 17.4: ~150 lines of raw export JSON; now one table of a few rows."""
    text = write_card(_model_dir(tmp_path, EVAL | {"export": EXPORT})).read_text()
    assert "```json" not in text
    section = text.split("Export report")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows == [
        "| check | result |",
        "|---|---|",
        "| exporter | `torch.onnx.export(dynamo=False)`, opset 18 |",
        "| fp32 ONNX vs torch | passed: max abs logit diff 3.3e-05, argmax agreement "
        "100.00 %, 2 inputs |",
        "| int8 ONNX vs fp32 | passed: max abs logit diff 0.41, argmax agreement 99.20 %, "
        "2 inputs, mIoU 61.00 -> 60.50 % |",
        "| files | `model.safetensors` 13.0 MB, `model.onnx` 12.9 MB |",
        "| versions | torch 2.4.0, onnxruntime 1.18.0 |",
    ]
    assert "2026-12-02" not in text and "glibc" not in text and "total_s" not in text


def test_both_kinds_of_card_come_from_the_one_template(tmp_path, monkeypatch):
    """Issue 14: registry and model-directory cards had two string builders."""
    template = tmp_path / "template.md"
    template.write_text("---\n{{ card_data }}\n---\n\nTEMPLATE {{ model_id }} {{ load_name }}\n")
    monkeypatch.setattr(card_parts, "TEMPLATE", template)
    planned = registry_card("lraspp_mbv3_ade20k_ce")
    assert planned.text.strip() == "TEMPLATE lraspp_mbv3_ade20k_ce lraspp_mbv3_ade20k_ce"
    assert planned.data.tags[:2] == ["semantic-segmentation", "cross-entropy"]
    card = ModelCard.load(write_card(_model_dir(tmp_path, EVAL)))
    assert card.text.strip() == "TEMPLATE lraspp_mbv3_cityscapes_cpg model"
    assert _results(card)["mIoU"] == 0.6543


def test_zoo_modules_import_no_circle():
    """Issue 14: zoo/cards.py -> zoo/loading.py -> zoo/hub.py -> zoo/cards.py (imports inside
    functions count: they run too)."""
    package = Path(zoo.__file__).parent
    names = {".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
             for p in package.rglob("*.py")}  # fmt: skip
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        name = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "zoo":
                submodules = {f"{node.module}.{alias.name}" for alias in node.names} & names
                edges |= submodules or {node.module}
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.split(".")[0] == "zoo"}
        graph[name] = edges - {name}
    circles = []

    def visit(name: str, path: list[str]) -> None:
        for target in sorted(graph.get(name, ())):
            if target in path:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            else:
                visit(target, [*path, target])

    for name in sorted(graph):
        visit(name, [name])
    assert not circles, circles[:3]


def test_card_of_a_hub_download_names_its_commit(tmp_path):
    sha = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hub" / "models--my-org--street-model" / "snapshots" / sha
    snapshot.parent.mkdir(parents=True)
    _model_dir(tmp_path, EVAL).rename(snapshot)
    text = ModelCard.load(write_card(snapshot)).text
    assert f'zoo.load("hf-hub:my-org/street-model@{sha}")' in text
    assert f'hf_hub_download("my-org/street-model", "model.onnx", revision="{sha}")' in text
    assert f"`my-org/street-model` at commit `{sha}`" in text


def test_card_lists_the_class_names(tmp_path):
    text = ModelCard.load(write_card(_model_dir(tmp_path, None))).text
    assert "| classes | 19: road, sidewalk, building," in text and "bicycle |" in text


def test_card_all_into_a_file_or_from_a_missing_models_root_is_refused(tmp_path, capsys):
    taken = tmp_path / "cards.txt"
    taken.write_text("keep")
    assert main(["--all", "--out", str(taken)]) == 2
    err = capsys.readouterr().err
    assert f"output folder {taken} is a file, not a folder" in err and "Errno" not in err
    assert taken.read_text() == "keep"
    out = tmp_path / "cards"
    assert main(["--all", "--out", str(out), "--models-root", str(tmp_path / "nope")]) == 2
    assert f"models root {tmp_path / 'nope'} is not a folder" in capsys.readouterr().err
    assert not out.exists()  # refused before any card is written


def test_card_keeps_a_hand_written_readme_unless_overwrite(tmp_path, capsys):
    directory = _model_dir(tmp_path, EVAL)
    readme = directory / CARD_NAME
    for own in (
        "# Crack detector\n\nNotes.\n",
        "---\nlicense: mit\n---\nMine.\n",
        "---\n: :\n---\n",
    ):
        readme.write_text(own)
        assert main([str(directory)]) == 2
        err = capsys.readouterr().err
        assert f"{readme} is not a cpg-zoo card (no 'library_name: cpg-zoo' in its YAML" in err
        assert "so it was kept: move it away, or pass --overwrite to replace it" in err
        assert readme.read_text() == own
    assert main([str(directory), "--overwrite"]) == 0
    assert ModelCard.load(readme).data.library_name == "cpg-zoo"
    readme.write_text(readme.read_text().replace("## Results", "## Results\n\nEdited."))
    assert main([str(directory)]) == 0  # a cpg-zoo card is regenerated
    assert "Edited." not in readme.read_text()


def test_card_with_an_impossible_repo_id_is_refused(tmp_path, capsys):
    directory = _model_dir(tmp_path, EVAL)
    assert main([str(directory), "--repo", "my org/street model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo card: error: Repo id must use alphanumeric chars")
    assert "'my org/street model'" in err
    assert not (directory / CARD_NAME).exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--out"], "--out goes only with --all; MODEL_DIR's card is MODEL_DIR/README.md"),
        (["--models-root"], "--models-root goes only with --all"),
        (["--out", "--models-root"], "--out and --models-root go only with --all"),
    ],
)
def test_card_options_of_all_are_refused_with_a_model_dir(tmp_path, capsys, options, message):
    """`zoo card DIR --out cards` wrote DIR/README.md and ignored --out: now refused."""
    directory = _model_dir(tmp_path, EVAL)
    with pytest.raises(SystemExit) as exit_info:
        main([str(directory), *(part for o in options for part in (o, str(tmp_path / "cards")))])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (directory / CARD_NAME).exists() and not (tmp_path / "cards").exists()


def test_card_options_of_a_model_dir_are_refused_with_all(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--all", "--out", str(tmp_path / "cards"), "--repo", "my-org/x"])
    assert exit_info.value.code == 2
    assert "--repo goes only with MODEL_DIR, not with --all" in capsys.readouterr().err
    assert not (tmp_path / "cards").exists()
