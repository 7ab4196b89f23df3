"""`zoo train` on your own data as README's "Your own data" has a newcomer run it: a small
folder dataset, a recipe derived from it, a built-in recipe on the wrong data, no network."""

from __future__ import annotations

import json
import os
import urllib.error
from pathlib import Path

import pytest
import torch

from tests.test_folder_dataset import make_folder_dataset
from training.cli import train_main
from training.trainer import Trainer

BUILT_IN = "lraspp_mbv3_synthcity_cpg"
QUICK = ["device=cpu", "workers=0", "amp=none", "threads=1", "crop_size=32,32",
         "eval_interval=1", "checkpoint_interval=1", "log_interval=1"]  # fmt: skip


@pytest.fixture(scope="module")
def six_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class folder dataset with 6 training images (fewer than the default batch of 8)."""
    root = tmp_path_factory.mktemp("data") / "mydata"
    return make_folder_dataset(root, n_train=6, n_val=2, size=(32, 48))


@pytest.fixture
def no_fit(monkeypatch: pytest.MonkeyPatch) -> list[Trainer]:
    """Trainer.fit replaced by a recorder: the CLI runs up to the training loop."""
    started: list[Trainer] = []

    def record(self: Trainer, *args, **kwargs) -> dict:
        started.append(self)
        return {}

    monkeypatch.setattr(Trainer, "fit", record)
    return started


def _recipe_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("recipe ")]
    assert len(lines) == 1, out
    return lines[0]


def test_derived_batch_fits_a_small_training_set(six_images: Path, tmp_path: Path, capsys,
                                                 no_fit: list[Trainer]) -> None:  # fmt: skip
    argv = ["--arch", "lraspp_mbv3", "--data-root", str(six_images), "--out", str(tmp_path / "r"),
            f"init={BUILT_IN}", "iterations=20", "device=cpu"]  # fmt: skip
    assert train_main(argv) == 0, capsys.readouterr().err
    assert no_fit[0].recipe.batch_size == 6
    line = _recipe_line(capsys.readouterr().out)
    assert "20 iterations of batch 6 (all 6 training images)" in line


def test_a_batch_too_big_for_the_data_suggests_one(six_images: Path, tmp_path: Path,
                                                   capsys) -> None:  # fmt: skip
    argv = ["--arch", "lraspp_mbv3", "--data-root", str(six_images), "--out", str(tmp_path / "r"),
            "batch_size=8", "iterations=2", *QUICK, "--no-progress"]  # fmt: skip
    assert train_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zoo train: error: the training set has 6 images")
    assert "batch_size=6" in err and len(err.splitlines()) == 1


def test_a_named_recipe_refuses_a_custom_data_root(six_images: Path, tmp_path: Path, capsys,
                                                   no_fit: list[Trainer]) -> None:  # fmt: skip
    out = tmp_path / "r"
    argv = [BUILT_IN, "--data-root", str(six_images), "--out", str(out), "iterations=2"]
    assert train_main(argv) == 2
    assert not no_fit and not out.exists()
    err = capsys.readouterr().err.strip()
    assert err.startswith("zoo train: error: recipe lraspp_mbv3_synthcity_cpg is for dataset "
                          "synthcity")  # fmt: skip
    assert "custom dataset" in err and f"--arch lraspp_mbv3 [init={BUILT_IN}]" in err


def test_backbone_download_failure_is_one_line(six_images: Path, tmp_path: Path, capsys,
                                               monkeypatch) -> None:  # fmt: skip
    import torchvision.models._api as api

    def no_download(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(api, "load_state_dict_from_url", no_download)
    argv = ["--arch", "lraspp_mbv3", "--data-root", str(six_images), "--out", str(tmp_path / "r"),
            "iterations=2", "batch_size=2", *QUICK, "--no-progress"]  # fmt: skip
    assert train_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("zoo train: error: could not download the ImageNet backbone weights "
                          "for lraspp_mbv3")  # fmt: skip
    assert "pretrained_backbone=False" in err


def test_the_printed_recipe_has_every_override(six_images: Path, tmp_path: Path, capsys,
                                               no_fit: list[Trainer]) -> None:  # fmt: skip
    argv = ["--arch", "lraspp_mbv3", "--data-root", str(six_images), "--out", str(tmp_path / "r"),
            "iterations=20", "batch_size=4", "lr=0.02", "crop_size=16,16"]  # fmt: skip
    assert train_main(argv) == 0, capsys.readouterr().err
    line = _recipe_line(capsys.readouterr().out)
    assert "crop 16x16, 20 iterations of batch 4, lr 0.02" in line
    assert "before key=value" not in line


def test_resume_prints_the_checkpoints_recipe(six_images: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "r"
    argv = ["--arch", "lraspp_mbv3", "--data-root", str(six_images), "--out", str(run),
            "iterations=1", "batch_size=2", "pretrained_backbone=false", *QUICK,
            "--no-progress"]  # fmt: skip
    assert train_main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert train_main([*argv, "--resume"]) == 0, capsys.readouterr().err
    line = _recipe_line(capsys.readouterr().out)
    assert "1 iterations of batch 2" in line and str(run / "last.pt") in line


@pytest.mark.parametrize(("cpus", "workers"), [({0, 1}, 2), (set(range(16)), 4), ({0}, 1)])
def test_derived_workers_fit_the_machine(six_images: Path, capsys, monkeypatch, cpus: set[int],
                                         workers: int) -> None:  # fmt: skip
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cpus, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: len(cpus))
    assert train_main(["--arch", "lraspp_mbv3", "--data-root", str(six_images),
                       "--print-recipe"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["workers"] == workers


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--arch", "lraspp"], "unknown arch 'lraspp'"),
        (["--arch", "lraspp_mbv3", "iteratons=5"], "unknown recipe key 'iteratons'"),
        (["--arch", "lraspp_mbv3", "iterations=many"], "iterations: expected an integer"),
    ],
)
def test_bad_arguments_fail_before_the_data_is_read(
    six_images: Path, tmp_path: Path, capsys, extra: list[str], message: str
) -> None:
    argv = [*extra, "--data-root", str(six_images), "--out", str(tmp_path / "r")]
    assert train_main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""  # nothing scanned or printed about the dataset


@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_an_out_that_is_a_file_is_refused(
    six_images: Path, tmp_path: Path, capsys, no_fit: list[Trainer], resume: list[str]
) -> None:
    out = tmp_path / "not_a_folder"
    out.write_text("keep me")
    argv = ["--arch", "lraspp_mbv3", "--data-root", str(six_images), "--out", str(out), *resume]
    assert train_main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == f"zoo train: error: --out {out} exists and is not a folder"
    assert captured.out == "" and not no_fit  # refused before the data is read
    assert out.read_text() == "keep me"


def test_loss_with_a_named_recipe_is_refused_not_ignored(six_images: Path, capsys) -> None:
    argv = [BUILT_IN, "--loss", "ce", "--print-recipe"]
    assert train_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"zoo train: error: --loss ce goes with --arch; recipe {BUILT_IN} trains with loss "
        "cpg: train lraspp_mbv3_synthcity_ce for ce"
    )
    assert train_main([BUILT_IN, "--loss", "cpg", "--print-recipe"]) == 0  # its own loss
    assert json.loads(capsys.readouterr().out)["loss"] == "cpg"
    for loss, expected in ((None, "cpg"), ("ce", "ce")):
        flags = [] if loss is None else ["--loss", loss]
        argv = ["--arch", "lraspp_mbv3", *flags, "--data-root", str(six_images), "--print-recipe"]
        assert train_main(argv) == 0
        recipe = json.loads(capsys.readouterr().out)
        assert (recipe["loss"], recipe["name"]) == (expected, f"lraspp_mbv3_mydata_{expected}")


def test_ctrl_c_says_how_to_continue_in_one_line(
    six_images: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: Trainer, *args, **kwargs) -> dict:
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupted)
    out = tmp_path / "run"
    argv = ["--arch", "lraspp_mbv3", "--data-root", str(six_images), "--out", str(out),
            "iterations=20", "device=cpu"]  # fmt: skip
    for first in (True, False):
        try:
            code = train_main([*argv, "--overwrite"])
        except KeyboardInterrupt:
            pytest.fail("Ctrl-C escaped zoo train as a traceback")
        assert code == 130
        err = capsys.readouterr().err.strip()
        if first:  # nothing saved yet
            assert err == f"zoo train: interrupted before the first checkpoint in {out}"
            out.mkdir()
            (out / "last.pt").write_bytes(b"saved")
        else:  # the command to continue: --resume, without --overwrite (it would delete the run)
            again = " ".join(["zoo", "train", *argv, "--resume"])
            assert err == (
                f"zoo train: interrupted; the run continues from {out / 'last.pt'} (written "
                f"every checkpoint_interval iterations) with: {again}"
            )


def test_resume_on_data_whose_classes_changed_is_refused(
    six_images: Path, tmp_path: Path, capsys
) -> None:
    import shutil

    data = Path(shutil.copytree(six_images, tmp_path / "mydata"))
    out = tmp_path / "run"
    argv = ["--arch", "lraspp_mbv3", "--data-root", str(data), "--out", str(out), "--no-progress",
            "iterations=1", "batch_size=2", "pretrained_backbone=false", *QUICK]  # fmt: skip
    assert train_main(argv) == 0, capsys.readouterr().err
    spec = json.loads((data / "dataset.json").read_text())
    last = out / "last.pt"
    classes, palette = spec["classes"], spec["palette"]
    changes = [
        ({"classes": [*classes, "hole"], "palette": [*palette, [9, 9, 9]]}, "it has 3 classes, "
         "the data 4"),
        ({"classes": classes[::-1], "palette": palette[::-1]}, "its class 0 is 'background', "
         "the data's is 'patch'"),
    ]  # fmt: skip
    for change, expected in changes:
        (data / "dataset.json").write_text(json.dumps({**spec, **change}))
        capsys.readouterr()
        assert train_main([*argv, "iterations=2", "--allow-override", "--resume"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"zoo train: error: cannot resume from {last}: the data's classes differ from the "
            f"run's ({expected}); a run keeps its classes: restore them in dataset.json, or "
            f"start a new run (another --out) that fine-tunes from it with init={last}"
        ]
    assert int(torch.load(last, weights_only=True)["iteration"]) == 1  # nothing trained on


def test_resume_after_the_data_folder_was_renamed_says_how(
    six_images: Path, tmp_path: Path, capsys
) -> None:
    import shutil

    out = tmp_path / "run"
    argv = ["--arch", "lraspp_mbv3", "--out", str(out), "--no-progress", "iterations=1",
            "batch_size=2", "pretrained_backbone=false", *QUICK]  # fmt: skip
    assert train_main([*argv, "--data-root", str(six_images)]) == 0, capsys.readouterr().err
    moved = Path(shutil.copytree(six_images, tmp_path / "cracks v2"))
    capsys.readouterr()
    assert train_main([*argv, "--data-root", str(moved), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"zoo train: error: {out / 'last.pt'} is a checkpoint of lraspp_mbv3_mydata_cpg, not of "
        "lraspp_mbv3_cracks_v2_cpg: its data was named 'mydata' (a recipe of your data is named "
        'after the folder, or "name" in dataset.json); to resume on this data, add "name": '
        '"mydata" to its dataset.json'
    )
    spec = json.loads((moved / "dataset.json").read_text())
    (moved / "dataset.json").write_text(json.dumps({**spec, "name": "mydata"}))
    assert train_main([*argv, "--data-root", str(moved), "--resume"]) == 0  # as the hint says
    assert "lraspp_mbv3_mydata_cpg: already trained (1 iterations)" in capsys.readouterr().out


def test_overrides_before_the_recipe_name_still_name_the_recipe(capsys) -> None:
    # argparse hands the first positional to RECIPE: `device=cpu` was "unknown recipe"
    assert train_main(["iterations=7", BUILT_IN, "lr=0.5", "--print-recipe"]) == 0
    recipe = json.loads(capsys.readouterr().out)
    assert (recipe["name"], recipe["iterations"], recipe["lr"]) == (BUILT_IN, 7, 0.5)
    assert train_main(["iterations=7", "--print-recipe"]) == 2
    err = capsys.readouterr().err
    assert "give one RECIPE before the key=value overrides (got 'iterations=7'" in err
