"""Trainer, recipes, checkpoints, resume after SIGKILL, `zoo train` / `zoo eval`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers_process import run_process
from torch.utils.data import Dataset

from training.cli import eval_main, train_main
from training.recipes import (
    RECIPES,
    Recipe,
    apply_overrides,
    get_recipe,
    list_recipes,
)
from training.trainer import CHECKPOINT_KEYS, Trainer, poly_warmup_factor
from zoo.config import ModelConfig
from zoo.registry import MODELS

REPO = Path(__file__).resolve().parents[1]
# Tiny runs: one thread each (the machine is small and shared), no workers.
TINY = [
    "crop_size=32,32",
    "batch_size=2",
    "threads=1",
    "workers=0",
    "log_interval=2",
    "checkpoint_interval=2",
    "eval_interval=6",
    "warmup_iters=3",
]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.data.synthetic import write_tiny_dataset

    root = tmp_path_factory.mktemp("synthcity")
    write_tiny_dataset("synthcity", root, n_train=6, n_val=3, size=(32, 48), seed=1)
    return root


# -- recipes ---------------------------------------------------------------------------------
def test_every_registry_id_has_a_recipe() -> None:
    names = list_recipes(include_synthcity=False)
    assert names == sorted(MODELS)
    for name in names:
        recipe = get_recipe(name)
        spec = MODELS[name]
        assert (recipe.arch, recipe.dataset, recipe.loss) == (spec.arch, spec.dataset, spec.loss)
        assert recipe.crop_size == spec.input_size
        assert recipe.pretrained_backbone
    for name in ("lraspp_mbv3_synthcity_ce", "lraspp_mbv3_synthcity_cpg"):
        assert not get_recipe(name).pretrained_backbone


def test_cpg_recipes_differ_from_ce_only_in_the_loss() -> None:
    for name, recipe in RECIPES.items():
        if recipe.loss != "cpg":
            continue
        twin = get_recipe(name.removesuffix("_cpg") + "_ce")
        assert recipe.cpg_lambda > 0 and twin.cpg_lambda == 0
        assert replace(recipe, name=twin.name, loss="ce", cpg_lambda=0.0) == twin


def test_public_defaults() -> None:
    city = get_recipe("deeplabv3_r50_cityscapes_ce")
    assert (city.crop_size, city.batch_size, city.iterations, city.lr) == (
        (512, 1024),
        8,
        80_000,
        0.01,
    )
    ade = get_recipe("hrnetv2_w48_ocr_ade20k_cpg")
    assert (ade.crop_size, ade.batch_size, ade.iterations) == ((512, 512), 16, 160_000)
    coco = get_recipe("lraspp_mbv3_cocostuff_ce")
    assert (coco.batch_size, coco.iterations, coco.aux_loss) == (16, 80_000, False)
    assert city.aux_loss and city.aux_weight == 0.4 and city.momentum == 0.9


def test_docs_table_matches_the_recipes() -> None:
    from training.recipes import recipes_markdown

    text = (REPO / "docs" / "recipes.md").read_text()
    table = text.split("<!-- recipes:begin -->\n")[1].split("<!-- recipes:end -->")[0]
    assert table == recipes_markdown(), "regenerate the table in docs/recipes.md"


def test_overrides_are_type_checked() -> None:
    base = get_recipe("lraspp_mbv3_synthcity_cpg")
    recipe = apply_overrides(
        base, ["iterations=200", "crop_size=256,512", "lr=0.02", "amp=bf16", "sync_bn=false"]
    )
    assert (recipe.iterations, recipe.crop_size, recipe.lr, recipe.amp) == (
        200,
        (256, 512),
        0.02,
        "bf16",
    )
    assert recipe.sync_bn is False
    assert apply_overrides(base, ["crop_size=64"]).crop_size == (64, 64)
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    bad = {
        "iterations=ten": "iterations: expected an integer",
        "lrr=0.1": "did you mean lr",
        "amp=fp8": "amp must be one of",
        "crop_size=1,2,3": "crop_size: expected 2",
        "sync_bn=maybe": "expected a boolean",
        "arch=hrnetv2_w48_ocr": "fixed by the recipe",
        "iterations": "not of the form key=value",
        "batch_size=0": "batch_size must be >= 1",
        "cpg_lambda=0": "cpg_lambda must be > 0",
        "aux_loss=true": "has no auxiliary head",
    }
    for override, message in bad.items():
        with pytest.raises(ValueError, match=message):
            apply_overrides(base, [override])
    with pytest.raises(ValueError, match="use a \\*_cpg recipe"):
        apply_overrides(get_recipe("lraspp_mbv3_synthcity_ce"), ["cpg_lambda=1.0"])
    with pytest.raises(ValueError, match="did you mean"):
        get_recipe("lraspp_mbv3_cityscape_cpg")


def test_cli_reports_bad_overrides(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = train_main(
        [
            "lraspp_mbv3_synthcity_cpg",
            "--data-root",
            str(tmp_path),
            "--out",
            str(tmp_path),
            "lr=abc",
        ]
    )
    assert code == 2
    assert "lr: expected a number, got 'abc'" in capsys.readouterr().err
    assert train_main(["nope", "--data-root", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "unknown recipe 'nope'" in capsys.readouterr().err
    missing = str(tmp_path / "missing")
    assert train_main(["lraspp_mbv3_synthcity_ce", "--data-root", missing, "--out", missing]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_poly_lr_with_warmup() -> None:
    recipe = apply_overrides(
        get_recipe("lraspp_mbv3_synthcity_ce"),
        dict(iterations=100, lr=0.1, min_lr=0.0, warmup_iters=10, warmup_ratio=0.1),
    )
    assert poly_warmup_factor(0, recipe) == pytest.approx(0.1)
    assert poly_warmup_factor(10, recipe) == pytest.approx(0.9**0.9)
    assert poly_warmup_factor(50, recipe) == pytest.approx(0.5**0.9)
    assert poly_warmup_factor(100, recipe) == 0.0
    values = [poly_warmup_factor(i, recipe) for i in range(10, 101)]
    assert values == sorted(values, reverse=True)


# -- overfitting -----------------------------------------------------------------------------
class Shapes(Dataset):
    """Two overlapping squares (classes 1, 2) on background 0, colour-coded with noise."""

    def __init__(self, n: int = 4, size: int = 48, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        colors = torch.tensor([[-1.0, -1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0]])
        self.items = []
        for _ in range(n):
            mask = torch.zeros(size, size, dtype=torch.long)
            for cls in (1, 2):
                y, x = torch.randint(0, size // 2, (2,), generator=generator).tolist()
                mask[y : y + size // 2, x : x + size // 2] = cls
            noise = 0.3 * torch.randn(3, size, size, generator=generator)
            self.items.append((colors[mask].permute(2, 0, 1) + noise, mask))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.items[index]


@pytest.mark.slow
def test_overfits_a_tiny_set(tmp_path: Path) -> None:
    # torchvision's MobileNetV3 uses BatchNorm momentum 0.01: its running statistics need
    # ~1000 iterations to follow the weights. This 120-iteration run uses 0.1.
    recipe = apply_overrides(
        get_recipe("lraspp_mbv3_synthcity_cpg"),
        dict(
            iterations=120, batch_size=4, crop_size=(48, 48), lr=0.05, warmup_iters=5,
            eval_interval=120, log_interval=40, workers=0, threads=1, boundary_tolerance=1,
            bn_momentum=0.1,
        ),
    )  # fmt: skip
    result = Trainer(recipe, tmp_path, train_set=Shapes(), val_set=Shapes(), progress=False).fit()
    assert result["mIoU"] > 0.9, result
    assert result["mBF"] > 0.8, result
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["total"] for r in log if "total" in r]
    assert losses[-1] < losses[0] / 3
    assert all(r["cpg"] > 0 for r in log if "cpg" in r)


def _grad_norm(parameters: Iterable[torch.nn.Parameter]) -> float:
    norms = [p.grad.detach().float().norm() for p in parameters if p.grad is not None]
    return float(torch.stack(norms).norm())


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_accumulation_and_clipping(
    tmp_path: Path, amp: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = 0.05  # far below the gradient norm of an untrained network
    recipe = apply_overrides(
        get_recipe("lraspp_mbv3_synthcity_ce"),
        dict(
            iterations=2, batch_size=4, grad_accum=2, clip_grad_norm=clip, amp=amp,
            crop_size=(48, 48), eval_interval=2, log_interval=1, workers=0, threads=1,
        ),
    )  # fmt: skip
    trainer = Trainer(recipe, tmp_path, train_set=Shapes(), val_set=Shapes(n=1), progress=False)
    # the norm of the (unscaled) gradients before clipping, and at each optimizer step
    before: list[float] = []
    at_step: list[float] = []
    clip_grad_norm = torch.nn.utils.clip_grad_norm_

    def recorded_clip(params, max_norm, **kwargs):
        params = list(params)
        before.append(_grad_norm(params))
        return clip_grad_norm(params, max_norm, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recorded_clip)
    scaler_step = torch.amp.GradScaler.step  # the trainer's optimizer step (also without AMP)

    def recorded_step(scaler, optimizer, *args, **kwargs):
        at_step.append(_grad_norm(p for g in optimizer.param_groups for p in g["params"]))
        return scaler_step(scaler, optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "step", recorded_step)
    trainer.fit()
    assert trainer.micro_batch == 2
    assert len(before) == len(at_step) == 2  # one clip per optimizer step (2 micro-batches each)
    assert min(before) > 2 * clip  # clipping had something to do ...
    assert at_step == pytest.approx([clip, clip], rel=1e-3)  # ... and the step saw clipped grads
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=True)
    assert checkpoint["iteration"] == 2
    assert bool(checkpoint["scaler"]) == (amp == "fp16")  # GradScaler state only for fp16
    assert all(v.dtype != torch.bfloat16 for v in checkpoint["model"].values())
    again = Trainer(recipe, tmp_path, train_set=Shapes(), val_set=Shapes(n=1), progress=False)
    assert again.fit(resume=True) == {}  # already complete: nothing to do


# -- checkpoints, resume, CLI ----------------------------------------------------------------
def _train_command(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "training", "train", "lraspp_mbv3_synthcity_cpg",
        "--data-root", str(root), "--out", str(out), "--no-progress", *TINY, *extra,
    ]  # fmt: skip


def _states_equal(a: dict, b: dict) -> float:
    """Largest absolute difference between two state dicts (same keys required)."""
    assert a.keys() == b.keys()
    worst = 0.0
    for key in a:
        if a[key].is_floating_point():
            worst = max(worst, float((a[key] - b[key]).abs().max()) if a[key].numel() else 0.0)
        else:
            assert torch.equal(a[key], b[key]), key
    return worst


@pytest.fixture(scope="module")
def full_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 24-iteration run (data loaded by one worker process)."""
    out = tmp_path_factory.mktemp("full")
    cmd = [*_train_command(tiny_root, out, "iterations=24"), "workers=1"]
    done = run_process(cmd, _env())
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_checkpoint_loads_with_weights_only(full_run: Path) -> None:
    for name in ("last.pt", "best.pt"):
        checkpoint = torch.load(full_run / name, map_location="cpu", weights_only=True)
        assert set(checkpoint) == set(CHECKPOINT_KEYS)
        assert not any(key.startswith("module.") for key in checkpoint["model"])
        config = ModelConfig.from_dict(checkpoint["config"])
        assert (config.arch, config.dataset, config.num_classes) == ("lraspp_mbv3", "synthcity", 19)
        assert config.loss == {
            "name": "cpg", "cpg_lambda": 1.0, "kernel_size": 3, "ignore_mode": "exclude",
        }  # fmt: skip
        assert config.recipe["iterations"] == 24 and config.recipe["crop_size"] == [32, 32]
        assert config.input_size == [32, 32] and config.model_id == "lraspp_mbv3_synthcity_cpg"
        assert isinstance(config.source_commit, str)
        assert len(checkpoint["rng"]) == 1  # one RNG state per process
        assert isinstance(checkpoint["rng"][0]["torch"], torch.Tensor)
    last = torch.load(full_run / "last.pt", weights_only=True)
    assert last["iteration"] == 24
    assert 0 <= last["best_miou"] <= 1
    assert (full_run / "tb").is_dir() and any((full_run / "tb").iterdir())
    assert not list(full_run.glob("*.tmp")) and not list(full_run.glob(".*.tmp"))


@pytest.mark.slow
def test_sigkill_and_resume_gives_the_same_weights(
    full_run: Path, tiny_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    cmd = _train_command(tiny_root, out, "iterations=24")
    process = subprocess.Popen(
        cmd, env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while not (out / "last.pt").exists():
            assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no checkpoint written in time"
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    killed_at = torch.load(out / "last.pt", weights_only=True)["iteration"]
    assert 2 <= killed_at < 24, "the run was not interrupted mid-way"
    done = run_process([*cmd, "--resume"], _env())
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = torch.load(out / "last.pt", weights_only=True)
    reference = torch.load(full_run / "last.pt", weights_only=True)
    assert resumed["iteration"] == reference["iteration"] == 24
    assert _states_equal(resumed["model"], reference["model"]) <= 1e-6
    momentum = [s["momentum_buffer"] for s in resumed["optimizer"]["state"].values()]
    momentum_ref = [s["momentum_buffer"] for s in reference["optimizer"]["state"].values()]
    assert (
        max(float((a - b).abs().max()) for a, b in zip(momentum, momentum_ref, strict=True)) <= 1e-6
    )
    assert resumed["best_miou"] == pytest.approx(reference["best_miou"])


def test_eval_cli_writes_eval_json(
    full_run: Path, tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval.json"
    args = [str(full_run / "best.pt"), "--data-root", str(tiny_root), "--out", str(out)]
    assert eval_main([*args, "--mode", "slide", "--flip", "--device", "cpu", "--workers", "0"]) == 0
    result = json.loads(out.read_text())
    assert result["dataset"] == "synthcity" and result["split"] == "val"
    assert result["inference"] == {
        "mode": "slide", "window": [32, 32], "stride": [22, 22], "flip": True, "amp": "none",
        "scales": [1.0],
    }  # fmt: skip
    metrics = result["metrics"]
    assert metrics["num_images"] == 3 and len(metrics["per_class_iou"]) == 19
    for key in ("mIoU", "pixel_acc", "mBF", "mBIoU", "boundary_tolerance_px"):
        assert key in metrics
    assert result["checkpoint"].endswith("best.pt") and "git_commit" in result
    assert "eval" in result["command"]
    assert "mIoU" in capsys.readouterr().out
    assert eval_main([str(tmp_path / "none.pt"), "--data-root", str(tiny_root)]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_reports_errors_found_while_training(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Settings that only the trainer can check, and a damaged image met mid-run, give
    `zoo train: error: ...` and exit code 2, not a traceback."""
    from training.data.synthetic import write_tiny_dataset

    root = write_tiny_dataset("synthcity", tmp_path / "data", n_train=2, n_val=1, size=(32, 48))
    args = ["lraspp_mbv3_synthcity_ce", "--data-root", str(root), "--no-progress", *TINY]
    out = str(tmp_path / "run")
    assert train_main([*args, "--out", out, "batch_size=3", "grad_accum=2"]) == 2
    assert "batch_size=3 must divide by processes x grad_accum" in capsys.readouterr().err
    damaged = sorted((root / "leftImg8bit" / "train").rglob("*.png"))[0]
    damaged.write_bytes(b"not a png")
    assert train_main([*args, "--out", out, "iterations=2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo train: error:") and damaged.name in err
    assert "Traceback" not in err
