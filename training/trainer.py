"""The iteration-based training loop (one process or many under torchrun).

SGD with momentum, poly LR per iteration after a linear warm-up, AMP (bf16, or fp16 with a
GradScaler), gradient accumulation and clipping, DDP with optional SyncBatchNorm. Rank 0 logs
(TensorBoard, tqdm), evaluates (metric counts are all-reduced over all ranks) and writes
`last.pt` / `best.pt` atomically. Checkpoints hold plain tensors and builtins only, so they
load with `torch.load(weights_only=True)`, and `resume` continues bit-exactly: the data order
and every sample's augmentation are functions of (seed, epoch, position), not of process state.
"""

from __future__ import annotations

import json
import math
import random
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from training.checkpoints import (
    CHECKPOINT_KEYS,
    all_rng_states,
    checkpoint_config,
    model_state_dict,
    save_checkpoint,
)
from training.data_order import micro_batches
from training.distributed import DistInfo, barrier, cleanup, init_distributed
from training.evaluate import evaluate
from training.loss_meter import NONFINITE_HINT, LossMeter, Term, as_summable
from training.model_setup import build_training_model
from training.recipe_data import build_datasets
from training.recipes import Recipe
from training.resume import (
    check_same_classes,
    check_same_run,
    prepare_out_dir,
    restore_rng,
    resume_point,
)
from training.runs import (
    BEST,
    LAST,
    METRICS,
    PREVIOUS,
    ResumePoint,
    append_record,
    start_logging,
    trim_records,
)
from training.schedule import poly_warmup_factor

__all__ = [
    "CHECKPOINT_KEYS",
    "Trainer",
    "build_datasets",
    "checkpoint_config",
    "poly_warmup_factor",
    "save_checkpoint",
    "train",
]


class Trainer:
    """Trains one recipe into `out_dir` (`last.pt`, `last.prev.pt`, `best.pt`, `tb/`,
    `metrics.jsonl`, `run.json`; see `training.runs`).

    Datasets default to `build_datasets(recipe, data_root)`; tests may pass their own.
    """

    def __init__(
        self,
        recipe: Recipe,
        out_dir: str | Path,
        data_root: str | Path | None = None,
        train_set: Dataset | None = None,
        val_set: Dataset | None = None,
        progress: bool = True,
        command: str | None = None,
    ) -> None:
        recipe.validate()
        self.command = command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
        self.recipe = recipe
        self.out_dir = Path(out_dir)
        self.progress = progress
        if train_set is None or val_set is None:
            if data_root is None:
                raise ValueError("give data_root or both train_set and val_set")
            train_set, val_set = build_datasets(recipe, data_root)
        self.train_set, self.val_set = train_set, val_set
        from zoo.datasets import get_dataset_info

        # a user's dataset carries its own classes; a benchmark's come from its table row
        self.info = getattr(train_set, "info", None) or get_dataset_info(recipe.dataset)

    # -- set-up --------------------------------------------------------------------------
    def _setup(self, dist_info: DistInfo, fresh: bool = True) -> None:
        from training.losses import SegmentationObjective

        r = self.recipe
        if r.threads:
            torch.set_num_threads(r.threads)
        world = dist_info.world_size
        if r.batch_size % (world * r.grad_accum):
            raise ValueError(
                f"batch_size={r.batch_size} must divide by processes x grad_accum "
                f"= {world} x {r.grad_accum}"
            )
        self.micro_batch = r.batch_size // (world * r.grad_accum)
        n = len(self.train_set)  # type: ignore[arg-type]
        self.batches_per_epoch = (n // world) // self.micro_batch
        if self.batches_per_epoch < 1:
            fits = (n // world) * world * r.grad_accum  # micro-batches of n // world images
            hint = f"use batch_size={fits}" if fits else f"use at most {n} process(es)"
            raise ValueError(
                f"the training set has {n} images: too few for {world} process(es) x "
                f"micro-batch {self.micro_batch}; {hint}"
            )
        torch.manual_seed(r.seed)  # same initial weights on every rank
        random.seed(r.seed)
        init = (lambda model: self._init_weights(model, dist_info)) if r.init and fresh else None
        self.module, self.model, self.channels_last = build_training_model(
            r, self.info.num_classes, dist_info, init
        )
        self.objective = SegmentationObjective(
            cpg_lambda=r.cpg_lambda,
            kernel_size=r.cpg_kernel_size,
            ignore_index=self.info.ignore_index,
            aux_weight=r.aux_weight,
            ignore_mode=r.cpg_ignore_mode,
        )
        self.optimizer = torch.optim.SGD(
            self.module.parameters(), lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda it: poly_warmup_factor(it, r)
        )
        self.scaler = torch.amp.GradScaler(dist_info.device.type, enabled=r.amp == "fp16")
        self.iteration = 0
        self.best_miou = -1.0
        # Whether OUT/last.pt is a good checkpoint, to be kept as last.prev.pt on the next save.
        self.last_is_good = False

    def _init_weights(self, model: nn.Module, dist_info: DistInfo) -> None:
        """Fine-tuning: the weights of `recipe.init` (see `training.finetune`); the report is
        printed and written to OUT/init.json."""

        from training.finetune import load_init_weights
        from training.runs import INIT_REPORT
        from zoo.fileio import write_text_atomic

        r = self.recipe
        report = load_init_weights(model, r.init, r.arch, list(self.info.classes))
        if dist_info.is_main:
            print(report.summary(), flush=True)
            text = json.dumps(report.to_dict(), indent=2) + "\n"
            write_text_atomic(self.out_dir / INIT_REPORT, text)

    def _checkpoint(self, rng: list[dict[str, Any]]) -> dict[str, Any]:
        """The checkpoint dict; `rng` holds every rank's RNG states (`_all_rng_states`)."""
        return {
            "model": model_state_dict(self.module),
            "config": self.config,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iteration,
            "rng": rng,
            "best_miou": self.best_miou,
        }

    def _resume(self, point: ResumePoint, dist_info: DistInfo) -> None:
        """Continue from `point`: the same run's recipe, every state restored."""
        path, checkpoint = point.path, point.checkpoint
        if dist_info.is_main:
            for problem in point.skipped:
                print(f"warning: {problem}; using {path}", file=sys.stderr)
        check_same_run(path, checkpoint["config"]["recipe"], self.recipe.to_dict())
        check_same_classes(path, checkpoint["config"], self.config)
        self.module.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint["scaler"]:
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.iteration = int(checkpoint["iteration"])
        self.best_miou = float(checkpoint["best_miou"])
        self.last_is_good = path.resolve() == (self.out_dir / LAST).resolve()
        if dist_info.is_main:
            print(
                f"resuming {self.out_dir} at iteration {self.iteration} of "
                f"{self.recipe.iterations} (from {path.name})"
            )
        restore_rng(checkpoint["rng"], path, dist_info, self.recipe.seed, self.iteration)

    # -- data ----------------------------------------------------------------------------
    # -- loop ----------------------------------------------------------------------------
    def fit(
        self, resume: str | Path | bool | None = None, overwrite: bool = False
    ) -> dict[str, Any]:
        """Train to `recipe.iterations`; `resume` = a checkpoint path, or True for
        `out_dir/last.pt` (falling back to `last.prev.pt`; a new run if there is neither).
        A new run into a folder that holds one is refused unless `overwrite` (which clears
        the old run's files). Returns the last evaluation's metrics."""
        r = self.recipe
        dist_info = init_distributed(r.device)
        try:
            return self._fit(dist_info, resume, overwrite)
        finally:
            cleanup()

    def _fit(
        self, dist_info: DistInfo, resume: str | Path | bool | None, overwrite: bool
    ) -> dict[str, Any]:
        r = self.recipe
        device = dist_info.device
        point = resume_point(self.out_dir, resume)  # bad checkpoints and folders fail fast
        prepare_out_dir(self.out_dir, point, bool(resume), overwrite, dist_info)
        self._setup(dist_info, fresh=point is None)
        self.config = checkpoint_config(r, info=self.info)
        if point is not None:
            self._resume(point, dist_info)
        resume = point is not None
        main = dist_info.is_main
        if self.iteration >= r.iterations:
            if main:
                print(f"{r.name}: already trained ({self.iteration} iterations); nothing to do")
            return {}
        if main and resume:
            trim_records(self.out_dir / METRICS, self.iteration)
        writer, bar = self._start_logging(dist_info) if main else (None, None)
        batches = micro_batches(
            self.train_set,
            self.micro_batch,
            self.batches_per_epoch,
            seed=r.seed,
            workers=r.workers,
            rank=dist_info.rank,
            world_size=dist_info.world_size,
            pin_memory=dist_info.device.type == "cuda",
            start=self.iteration * r.grad_accum,
        )
        last_eval: dict[str, Any] = {}
        meter = LossMeter(device)
        started = time.perf_counter()
        self.model.train()
        while self.iteration < r.iterations:
            lr = self.optimizer.param_groups[0]["lr"]
            meter.add(self._train_step(batches, dist_info, meter))
            if bar is not None:
                bar.update(1)
            final = self.iteration == r.iterations
            it = self.iteration
            log, evaluate_now = it % r.log_interval == 0 or final, it % r.eval_interval == 0
            save = it % r.checkpoint_interval == 0 or final
            if log or evaluate_now or save:
                meter.check_finite()  # nothing non-finite is logged, evaluated or saved
            if log:
                steps = meter.steps
                means = meter.means()
                if main:
                    assert writer is not None
                    for name, value in means.items():
                        writer.add_scalar(f"train/{name}", value, self.iteration)
                    writer.add_scalar("train/lr", lr, self.iteration)
                    seconds = (time.perf_counter() - started) / steps
                    writer.add_scalar("train/sec_per_iter", seconds, self.iteration)
                    if bar is not None:
                        bar.set_postfix(loss=f"{means['total']:.4f}", lr=f"{lr:.2e}")
                    self._log({"iteration": self.iteration, "lr": lr, **means})
                started = time.perf_counter()
            if evaluate_now or final:
                last_eval = self._validate(device, writer, bar)
            if save:
                rng = all_rng_states()
                if main:
                    self._save_last(self._checkpoint(rng))
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        barrier()
        return last_eval

    def _save_last(self, checkpoint: dict[str, Any]) -> None:
        """Write `last.pt`, keeping the one it replaces (if good) as `last.prev.pt`."""
        last = self.out_dir / LAST
        if self.last_is_good and last.is_file():
            last.replace(self.out_dir / PREVIOUS)
        save_checkpoint(last, checkpoint)
        self.last_is_good = True

    def _start_logging(self, dist_info: DistInfo) -> tuple[Any, Any]:
        """Rank 0: `run.json`, a TensorBoard writer and (optionally) a tqdm bar."""
        run_info = {
            "recipe": self.recipe.to_dict(),
            "command": self.command,
            "world_size": dist_info.world_size,
            "device": str(dist_info.device),
            "git_commit": self.config["source_commit"],
        }
        return start_logging(
            self.out_dir, run_info, self.iteration, self.recipe.iterations,
            self.recipe.name if self.progress else None,
        )  # fmt: skip

    def _train_step(
        self, batches: Iterator[tuple[Tensor, Tensor]], dist_info: DistInfo, meter: LossMeter
    ) -> dict[str, Term]:
        """One optimizer step over `grad_accum` micro-batches; returns the loss terms (floats,
        or tensors left on the device if the objective gives tensors)."""
        r = self.recipe
        device = dist_info.device
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(r.amp)
        layout = torch.channels_last if self.channels_last else torch.preserve_format
        self.optimizer.zero_grad(set_to_none=True)
        terms_step: dict[str, Term] = {}
        for k in range(r.grad_accum):
            images, masks = next(batches)
            images = images.to(device, non_blocking=True, memory_format=layout)
            masks = masks.to(device, non_blocking=True)
            sync = k == r.grad_accum - 1 or not dist_info.distributed
            with nullcontext() if sync else self.model.no_sync():  # type: ignore[operator]
                with torch.autocast(
                    device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
                ):
                    outputs = self.model(images)
                # the loss is computed in fp32
                outputs = {key: v.float() for key, v in outputs.items() if v is not None}
                loss, terms = self.objective(outputs, masks)
                total = terms["total"]
                if r.amp != "fp16":  # (fp16: GradScaler skips steps with inf/NaN gradients)
                    if isinstance(total, Tensor):
                        meter.watch(total, self.iteration)  # raised at the next report
                    elif not math.isfinite(total):
                        raise FloatingPointError(
                            f"non-finite loss {terms} at iteration {self.iteration}; "
                            + NONFINITE_HINT
                        )
                self.scaler.scale(loss / r.grad_accum).backward()
            for name, value in terms.items():
                summand = as_summable(value) / r.grad_accum
                terms_step[name] = terms_step.get(name, 0.0) + summand
        if r.clip_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.module.parameters(), r.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.iteration += 1
        return terms_step

    def _validate(self, device: torch.device, writer: Any, bar: Any) -> dict[str, Any]:
        """Evaluate on all ranks; on rank 0 log, and write `best.pt` if mIoU improved."""
        result = self._evaluate(device)
        improved = result["mIoU"] > self.best_miou  # the same on every rank (all-reduced)
        if improved:
            self.best_miou = result["mIoU"]
        rng = all_rng_states() if improved else []
        if writer is not None:
            for key in ("mIoU", "pixel_acc", "mean_acc", "mBF", "mBIoU"):
                if key in result:
                    writer.add_scalar(f"val/{key}", result[key], self.iteration)
            summary = {k: v for k, v in result.items() if not k.startswith("per_")}
            self._log({"iteration": self.iteration, "val": summary})
            message = (
                f"iter {self.iteration}: val mIoU {result['mIoU']:.4f} "
                f"mBF {result.get('mBF', float('nan')):.4f} (best {self.best_miou:.4f})"
            )
            (bar.write if bar is not None else print)(message)
            if improved:
                save_checkpoint(self.out_dir / BEST, self._checkpoint(rng))
        self.model.train()
        return result

    def _evaluate(self, device: torch.device) -> dict[str, Any]:
        """`evaluate` on this rank's shard of the val split, with rank 0's BatchNorm
        statistics on every rank: the weights `best.pt` / `last.pt` hold."""
        import torch.distributed as dist

        r = self.recipe
        if dist.is_available() and dist.is_initialized():
            # Per-process BatchNorm (CPU, or sync_bn=False) lets running statistics drift
            # apart between ranks after the last forward; DDP re-broadcasts them only at the
            # next training forward.
            for buffer in self.module.buffers():
                dist.broadcast(buffer, src=0)
        stride = None if r.eval_stride == (0, 0) else r.eval_stride
        return evaluate(
            self.module,
            self.val_set,
            self.info.num_classes,
            device,
            ignore_index=self.info.ignore_index,
            mode=r.eval_mode,
            window=r.crop_size,
            stride=stride,
            flip=r.eval_flip,
            amp=r.amp,
            boundary_tolerance=r.boundary_tolerance,
            max_images=r.val_max_images,
            workers=min(r.workers, 2),
        )

    def _log(self, record: dict[str, Any]) -> None:
        append_record(self.out_dir / METRICS, record)


def train(
    recipe: Recipe,
    data_root: str | Path,
    out_dir: str | Path,
    resume: str | Path | bool | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train `recipe` on the dataset under `data_root` into `out_dir`; see `Trainer`."""
    return Trainer(recipe, out_dir, data_root=data_root, progress=progress).fit(resume)
