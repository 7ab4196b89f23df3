"""The trainer's GPU habits, their device-independent parts checked on the CPU: loss terms
kept on the device log what host floats log, a non-finite total is raised before anything is
saved, `compile=true` trains and saves plain state dicts, CUDA-only layout/tuning."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from training.loss_meter import LossMeter
from training.recipes import apply_overrides, get_recipe
from training.trainer import Trainer

RECIPE = "lraspp_mbv3_synthcity_cpg"
TINY = dict(
    crop_size=(32, 32), batch_size=4, grad_accum=2, threads=1, workers=0, log_interval=2,
    checkpoint_interval=2, eval_interval=4, warmup_iters=2, iterations=4,
)  # fmt: skip


class _Blocks(Dataset):
    """Four 32x32 images with two label blocks each."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.masks = torch.zeros(4, 32, 32, dtype=torch.long)
        self.masks[:, 8:24, 4:20] = 1
        self.masks[1::2, :, 16:] = 2
        self.images = torch.randn(4, 3, 32, 32, generator=generator) + self.masks[:, None]

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.masks[index]


def _trainer(out: Path, **overrides: object) -> Trainer:
    recipe = apply_overrides(get_recipe(RECIPE), {**TINY, **overrides})
    return Trainer(recipe, out, train_set=_Blocks(), val_set=_Blocks(), progress=False)


class _Terms:
    """Wraps an objective so that its terms come back as float32 tensors (no host read, the
    objective's own behaviour) or as Python floats (a host read per step)."""

    def __init__(self, objective: torch.nn.Module, floats: bool, nan_at: int | None) -> None:
        self.objective, self.floats, self.nan_at, self.calls = objective, floats, nan_at, 0

    def __call__(self, outputs: dict, masks: torch.Tensor) -> tuple[torch.Tensor, dict]:
        loss, terms = self.objective(outputs, masks)
        self.calls += 1
        values = {name: torch.as_tensor(v, dtype=torch.float32) for name, v in terms.items()}
        if self.nan_at is not None and self.calls > 2 * self.nan_at:  # 2 micro-batches a step
            loss, values["total"] = loss * float("nan"), values["total"] * float("nan")
        if self.floats:
            return loss, {name: float(value) for name, value in values.items()}
        return loss, values


def _with_terms(trainer: Trainer, floats: bool = False, nan_at: int | None = None) -> None:
    setup = trainer._setup

    def setup_then_wrap(dist_info: object, **kwargs: object) -> None:
        setup(dist_info, **kwargs)
        trainer.objective = _Terms(trainer.objective, floats, nan_at)

    trainer._setup = setup_then_wrap  # type: ignore[method-assign]


def test_loss_meter_means_floats_and_tensors_alike() -> None:
    meter = LossMeter(torch.device("cpu"))
    for total in (1.0, 2.0, 4.5):
        meter.add({"total": total, "ce": torch.tensor(total / 2, dtype=torch.float32)})
    assert meter.means() == {"total": 2.5, "ce": 1.25}
    assert meter.steps == 0 and meter.means() == {}


def test_tensor_loss_terms_log_what_float_terms_log(tmp_path: Path) -> None:
    on_host = _trainer(tmp_path / "floats")
    _with_terms(on_host, floats=True)
    on_host.fit()
    on_device = _trainer(tmp_path / "tensors")
    _with_terms(on_device)
    on_device.fit()
    logs = [(tmp_path / run / "metrics.jsonl").read_text() for run in ("floats", "tensors")]
    assert logs[0] == logs[1]
    assert [json.loads(line)["iteration"] for line in logs[0].splitlines()] == [2, 4, 4]
    weights = [torch.load(tmp_path / run / "last.pt")["model"] for run in ("floats", "tensors")]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def test_a_nonfinite_total_on_the_device_is_raised_before_anything_is_saved(
    tmp_path: Path,
) -> None:
    trainer = _trainer(tmp_path, log_interval=4, checkpoint_interval=4)
    _with_terms(trainer, nan_at=1)  # the step that starts at iteration 1
    with pytest.raises(FloatingPointError, match="non-finite loss at iteration 1; lower lr"):
        trainer.fit()
    assert trainer.iteration == 4  # noticed at the first report, without a per-step sync
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()


def test_compile_trains_and_saves_a_plain_state_dict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inductor takes minutes to compile on this small shared CPU; the "eager" backend keeps
    # TorchDynamo's capture (what compile=true changes in the trainer) and runs in seconds.
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    _trainer(tmp_path / "eager", iterations=2).fit()
    compiled = _trainer(tmp_path / "compiled", iterations=2, compile=True)
    compiled.fit()
    assert type(compiled.model).__name__ == "OptimizedModule"
    reference = torch.load(tmp_path / "eager" / "last.pt")["model"]
    weights = torch.load(tmp_path / "compiled" / "last.pt")["model"]
    assert weights.keys() == reference.keys()  # no "_orig_mod." prefix
    assert max(float((weights[k] - reference[k]).abs().max()) for k in weights) <= 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_uses_channels_last_and_cudnn_benchmark(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, iterations=2, device="cuda", amp="bf16")
    trainer.fit()
    assert torch.backends.cudnn.benchmark is True
    conv = next(m for m in trainer.module.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    weights = torch.load(tmp_path / "last.pt")["model"]
    assert all(tensor.is_contiguous() for tensor in weights.values())  # safetensors-ready


def test_cpu_run_keeps_the_default_layout(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, iterations=2, device="cpu")
    trainer.fit()
    assert trainer.channels_last is False  # channels_last=true applies on CUDA only
    conv = next(m for m in trainer.module.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous()
