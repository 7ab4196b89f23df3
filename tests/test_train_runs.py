"""Run folders of `zoo train`: no accidental overwrite, exact resume, damaged files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

import training.trainer as trainer_module
from training.cli import train_main
from training.recipes import apply_overrides, get_recipe
from training.trainer import Trainer

RECIPE = "lraspp_mbv3_synthcity_cpg"
# Tiny runs: one thread, no workers, a checkpoint every 2 iterations, one evaluation at 6.
TINY = [
    "crop_size=32,32", "batch_size=2", "threads=1", "workers=0", "log_interval=2",
    "checkpoint_interval=2", "eval_interval=6", "warmup_iters=3", "iterations=6", "lr=0.03",
]  # fmt: skip
KILLED_AT = 4  # the interrupted run dies right after writing last.pt at this iteration


class _Killed(BaseException):
    """Stands for SIGKILL: nothing in the trainer or the CLI catches it."""


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    return [RECIPE, "--data-root", str(root), "--out", str(out), "--no-progress", *extra]


def _iteration(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["iteration"])


def _strict_records(path: Path) -> list[dict]:
    """metrics.jsonl parsed as strict JSON (a bare NaN or Infinity fails)."""

    def reject(constant: str) -> None:
        raise AssertionError(f"{path} holds a bare {constant}")

    return [json.loads(line, parse_constant=reject) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.data.synthetic import write_tiny_dataset

    root = tmp_path_factory.mktemp("synthcity")
    write_tiny_dataset("synthcity", root, n_train=6, n_val=3, size=(32, 48), seed=1)
    return root


@pytest.fixture(scope="module")
def interrupted(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-iteration run (lr=0.03) killed right after it wrote last.pt at iteration 4."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    real_save = trainer_module.save_checkpoint

    def save_then_die(path: str | Path, checkpoint: dict) -> None:
        real_save(path, checkpoint)
        if Path(path).name == "last.pt" and checkpoint["iteration"] == KILLED_AT:
            raise _Killed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer_module, "save_checkpoint", save_then_die)
        with pytest.raises(_Killed):
            train_main(_args(tiny_root, out, *TINY))
    return out


@pytest.fixture
def run(interrupted: Path, tmp_path: Path) -> Path:
    """A copy of the interrupted run for one test to change."""
    return Path(shutil.copytree(interrupted, tmp_path / "run"))


def test_print_recipe_needs_no_data_root_or_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert train_main([RECIPE, "--print-recipe", "lr=0.5"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["name"] == RECIPE and printed["lr"] == 0.5
    assert train_main([RECIPE, "lr=0.5"]) == 2
    assert "--data-root is required" in capsys.readouterr().err


def test_interrupted_run_keeps_the_previous_checkpoint(interrupted: Path) -> None:
    assert _iteration(interrupted / "last.pt") == KILLED_AT
    assert _iteration(interrupted / "last.prev.pt") == KILLED_AT - 2


def test_new_run_into_a_run_folder_is_refused_and_overwrite_clears_it(
    run: Path, tiny_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / "notes.txt").write_text("mine")
    last, log = (run / "last.pt").read_bytes(), (run / "metrics.jsonl").read_text()
    args = _args(tiny_root, run, *TINY, "iterations=2")
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"zoo train: error: {run} already holds a run (last.pt, last.prev.pt")
    assert "--resume" in err and "--overwrite" in err
    assert (run / "last.pt").read_bytes() == last and (run / "metrics.jsonl").read_text() == log

    assert train_main([*args, "--overwrite"]) == 0
    assert [r["iteration"] for r in _strict_records(run / "metrics.jsonl")] == [2, 2]
    assert _iteration(run / "last.pt") == 2 and not (run / "last.prev.pt").exists()
    assert len(list((run / "tb").iterdir())) == 1  # the old run's event file is gone
    assert (run / "notes.txt").read_text() == "mine"


def test_resume_restores_the_recipe_and_refuses_overrides_that_change_it(
    run: Path, tiny_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_main(_args(tiny_root, run, "--resume", "lr=0.05", "iterations=8")) == 2
    err = capsys.readouterr().err
    assert "iterations 6 -> 8, lr 0.03 -> 0.05" in err and "--allow-override" in err
    assert _iteration(run / "last.pt") == KILLED_AT

    # No lr given: the run's own 0.03 comes back; workers/threads/device may change.
    assert train_main(_args(tiny_root, run, "--resume", "threads=1", "device=cpu")) == 0
    assert f"resuming {run} at iteration {KILLED_AT} of 6" in capsys.readouterr().out
    checkpoint = torch.load(run / "last.pt", weights_only=True)
    assert checkpoint["iteration"] == 6 and checkpoint["config"]["recipe"]["lr"] == 0.03
    assert _iteration(run / "last.prev.pt") == KILLED_AT


def test_resume_is_a_flag_and_resume_from_names_the_checkpoint(
    run: Path, tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--out", str(run), "--resume", "iterations=8", "--allow-override", "--print-recipe"]
    assert train_main([RECIPE, *args]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["iterations"], printed["lr"]) == (8, 0.03)

    elsewhere = tmp_path / "branch"
    resume_from = ["--resume-from", str(run / "last.prev.pt")]
    assert train_main(_args(tiny_root, elsewhere, *resume_from)) == 0
    assert f"resuming {elsewhere} at iteration {KILLED_AT - 2} of 6" in capsys.readouterr().out
    assert _iteration(elsewhere / "last.pt") == 6


def test_a_torn_metrics_line_does_not_stop_resume(
    run: Path, tiny_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open(run / "metrics.jsonl", "a") as file:
        file.write('{"iteration": 5, "total": 0.')  # killed during the append
    assert train_main([*_args(tiny_root, run, *TINY), "--resume"]) == 0
    assert "metrics.jsonl line 3 is not a JSON record" in capsys.readouterr().err
    records = _strict_records(run / "metrics.jsonl")
    assert [r["iteration"] for r in records if "total" in r] == [2, 4, 6]
    assert [r["iteration"] for r in records if "val" in r] == [6]


def test_an_unreadable_last_checkpoint_falls_back_to_the_previous_one(
    run: Path, tiny_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[: len(data) // 2])
    assert train_main([*_args(tiny_root, run), "--resume"]) == 0
    captured = capsys.readouterr()
    assert (
        f"zoo train: warning: {run / 'last.pt'} is not a training checkpoint: it is an "
        "incomplete zip archive" in captured.err
    )
    assert f"at iteration {KILLED_AT - 2} of 6 (from last.prev.pt)" in captured.out
    # the broken last.pt is replaced, not kept as last.prev.pt
    assert (_iteration(run / "last.pt"), _iteration(run / "last.prev.pt")) == (6, 4)


@pytest.mark.parametrize("damage", ["truncated", "pickled objects"])
def test_an_unreadable_checkpoint_without_fallback_is_a_clear_error(
    run: Path, tiny_root: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    (run / "last.prev.pt").unlink(missing_ok=True)
    last = run / "last.pt"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[:1000])
        expected = f"{last} is not a training checkpoint: it is an incomplete zip archive of 1000"
    else:
        torch.save({"model": {}, "config": {"recipe": Path("x")}, "iteration": 4}, last)
        expected = f"checkpoint {last} holds objects other than tensors and builtins"
    assert train_main([*_args(tiny_root, run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"zoo train: error: cannot resume: {expected}")
    assert "Traceback" not in err


class _Unlabelled(Dataset):
    """Two random images whose pixels are all ignored (255): val mIoU is undefined (NaN)."""

    def __init__(self, ignored: bool) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(2, 3, 32, 32, generator=generator)
        self.mask = torch.full((32, 32), 255 if ignored else 1, dtype=torch.long)

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.mask


def test_metrics_log_is_strict_json(tmp_path: Path) -> None:
    recipe = apply_overrides(
        get_recipe(RECIPE), [*TINY, "iterations=1", "eval_interval=1", "boundary_tolerance=1"]
    )
    trainer = Trainer(
        recipe, tmp_path, train_set=_Unlabelled(False), val_set=_Unlabelled(True), progress=False
    )
    trainer.fit()
    records = _strict_records(tmp_path / "metrics.jsonl")
    val = [r["val"] for r in records if "val" in r]
    assert len(val) == 1 and val[0]["mIoU"] is None and val[0]["pixel_acc"] is None


def test_eval_json_is_strict_json(tmp_path: Path) -> None:
    """NaN and inf in an evaluation (no pixels of a class, a ratio over zero) are written as
    null, as metrics.jsonl does; a bare NaN or Infinity is not JSON."""
    from training.evaluate import write_eval_json

    result = {"metrics": {"mIoU": float("nan"), "ratio": float("inf")}, "iou": [0.5, float("-inf")]}
    path = write_eval_json(tmp_path / "eval.json", result)
    parsed = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert parsed == {"metrics": {"mIoU": None, "ratio": None}, "iou": [0.5, None]}
