"""The whole GPU check in one run: CUDA tests, CPG vs CE, training throughput, inference.

    PYTHONPATH=. python bench/gpu.py --out runs/gpu            # on a CUDA machine, <= 8 min
    python bench/gpu.py --device cpu --quick --out /tmp/gpu    # the same code paths, < 1 min

Results are written after every case (`gpu.json` and `gpu.md` in `--out`), so a run cut off
by a time limit still reports what it measured; a case that fails records its error and the
run goes on. Each timed case runs a few untimed warm-up steps first; times are medians, with
`torch.cuda.synchronize()` around each step on CUDA. Peak memory is
`torch.cuda.max_memory_allocated` per case (not measured on the CPU). The training step is
the trainer's (`SegmentationObjective`, SGD, autocast) on random images and blocky labels, not
the data loader. ONNX Runtime's CUDA providers need onnxruntime-gpu, which is not measured
here (see the report's notes).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.synthetic import blocky_labels
from training.losses import SegmentationObjective
from zoo.models import build_model, has_aux_head

NOTES = [
    "ORT CUDA / TensorRT providers need onnxruntime-gpu (a ~244 MB wheel, above what the "
    "device tool carries); they are not measured here.",
]


class Report:
    """Results by section, rewritten to JSON + Markdown after every case."""

    def __init__(self, out: Path, meta: dict[str, Any]) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {"meta": meta, "notes": NOTES, "sections": {}}
        self.save()

    def add(self, section: str, row: dict[str, Any]) -> None:
        self.data["sections"].setdefault(section, []).append(row)
        self.save()
        print(f"[{section}] {json.dumps(row)}", flush=True)

    def save(self) -> None:
        (self.out / "gpu.json").write_text(json.dumps(self.data, indent=2) + "\n")
        lines = ["# GPU check", "", *(f"- {k}: {v}" for k, v in self.data["meta"].items()), ""]
        for section, rows in self.data["sections"].items():
            keys = list(dict.fromkeys(k for row in rows for k in row))
            lines += [f"## {section}", "", "| " + " | ".join(keys) + " |"]
            lines.append("|" + "---|" * len(keys))
            lines += ["| " + " | ".join(_cell(row.get(k)) for k in keys) + " |" for row in rows]
            lines.append("")
        lines += ["## notes", "", *(f"- {note}" for note in self.data["notes"]), ""]
        (self.out / "gpu.md").write_text("\n".join(lines))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, warmup: int, runs: int) -> dict[str, Any]:
    """Median seconds of `runs` calls after `warmup` untimed ones, and peak memory (MiB)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"median_s": statistics.median(times), "peak_mib": peak}


def loss_cases(report: Report, device: torch.device, quick: bool) -> None:
    """CE vs CE + CPG forward + backward on logits, per class count, kernel and CPG path."""
    cases = [(19, 1, 64, 128), (150, 1, 64, 64)] if quick else [
        (19, 8, 512, 1024), (150, 16, 512, 512), (171, 16, 512, 512)]  # fmt: skip
    kernels = (3,) if quick else (3, 5, 7)
    warmup, runs = (1, 2) if quick else (2, 5)
    for classes, batch, height, width in cases:
        logits = torch.randn(batch, classes, height, width, device=device, requires_grad=True)
        target = blocky_labels(classes, (batch, height, width)).long().to(device)
        ce = SegmentationObjective(0.0)

        def step(
            objective: SegmentationObjective = ce,
            logits: torch.Tensor = logits,
            target: torch.Tensor = target,
        ) -> None:
            total, _ = objective({"out": logits}, target)
            total.backward()
            logits.grad = None

        base = timed(step, device, warmup, runs)
        report.add("loss", {"C": classes, "B": batch, "size": f"{height}x{width}",
                            "loss": "ce", **base})  # fmt: skip
        for k in kernels:
            for path in ("sparse", "dense"):
                name = f"cpg k={k} {path}"
                try:
                    cpg = SegmentationObjective(1.0, kernel_size=k, cpg_path=path)
                    result = timed(lambda o=cpg: step(o), device, warmup, runs)
                    result["cpg_over_ce"] = result["median_s"] / base["median_s"]
                except Exception as error:  # record and go on
                    result = {"error": f"{type(error).__name__}: {str(error)[:200]}"}
                report.add("loss", {"C": classes, "B": batch, "size": f"{height}x{width}",
                                    "loss": name, **result})  # fmt: skip
        del logits, target


def train_cases(report: Report, device: torch.device, quick: bool, archs: list[str]) -> None:
    """Training images/s and peak memory per arch: CE vs CE + CPG, channels_last, compile."""
    settings = [("ce", False, False), ("cpg", False, False), ("cpg", True, False),
                ("cpg", True, True)]  # fmt: skip
    amp = torch.bfloat16 if device.type == "cuda" else None
    for arch in archs:
        size, batch = ((64, 128), 2) if quick else ARCH_TRAIN_SHAPES.get(arch, ((512, 1024), 2))
        for loss, channels_last, compiled in settings:
            if compiled and quick:
                continue  # compiling takes minutes on a CPU; the GPU run covers it
            row: dict[str, Any] = {
                "arch": arch, "crop": f"{size[0]}x{size[1]}", "batch": batch, "loss": loss,
                "channels_last": channels_last, "compile": compiled,
                "amp": "bf16" if amp else "none",
            }  # fmt: skip
            try:
                row |= _train_throughput(arch, loss, size, batch, device, amp, channels_last,
                                         compiled, quick)  # fmt: skip
            except Exception as error:
                row["error"] = f"{type(error).__name__}: {str(error)[:200]}"
            report.add("train", row)


# Per-GPU batch at the recipe crop (the recipes' global batch over 4 GPUs, as in MMSeg).
ARCH_TRAIN_SHAPES: dict[str, tuple[tuple[int, int], int]] = {
    "deeplabv3_r50": ((512, 1024), 2),
    "hrnetv2_w48_ocr": ((512, 1024), 2),
    "lraspp_mbv3": ((512, 1024), 2),
}


def _train_throughput(
    arch: str, loss: str, size: tuple[int, int], batch: int, device: torch.device,
    amp: torch.dtype | None, channels_last: bool, compiled: bool, quick: bool,
) -> dict[str, Any]:  # fmt: skip
    classes = 19
    aux = has_aux_head(arch)
    model = build_model(arch, classes, aux_loss=aux).to(device).train()
    objective = SegmentationObjective(1.0 if loss == "cpg" else 0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch, 3, *size, device=device)
    target = blocky_labels(classes, (batch, *size)).long().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    run = torch.compile(model) if compiled else model

    def step() -> None:
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            outputs = run(images)
        total, _ = objective({k: v.float() for k, v in outputs.items()}, target)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    result = timed(step, device, 1 if quick else 3, 1 if quick else 6)
    result["images_per_s"] = batch / result["median_s"]
    return result


def inference_cases(report: Report, device: torch.device, quick: bool, archs: list[str]) -> None:
    """Eval-mode latency at 1024x2048 (quick: 64x128), batch 1 and 8, fp32 / bf16 / fp16."""
    size = (64, 128) if quick else (1024, 2048)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    for arch in archs:
        model = build_model(arch, 19).to(device).eval()
        for batch in (1, 8):
            images = torch.randn(batch, 3, *size, device=device)
            for name, dtype in dtypes.items():
                if device.type == "cpu" and name == "fp16":
                    continue  # half-precision convolutions are a GPU path
                row: dict[str, Any] = {"arch": arch, "size": f"{size[0]}x{size[1]}",
                                       "batch": batch, "precision": name}  # fmt: skip
                try:
                    net = model.to(dtype)
                    x = images.to(dtype)
                    with torch.inference_mode():
                        row |= timed(lambda n=net, x=x: n(x)["out"], device,
                                     1 if quick else 3, 1 if quick else 10)  # fmt: skip
                    row["ms"] = 1000 * row["median_s"]
                except Exception as error:
                    row["error"] = f"{type(error).__name__}: {str(error)[:200]}"
                report.add("inference", row)
        del model


def cuda_tests(report: Report, quick: bool) -> None:
    """`pytest -m cuda` (skipped tests where there is no GPU)."""
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"]
    root = Path(__file__).resolve().parents[1]
    try:
        done = subprocess.run(
            command, cwd=root, capture_output=True, text=True, timeout=60 if quick else 240
        )
        tail = done.stdout.strip().splitlines()[-1:] or [done.stderr.strip()[-200:]]
        report.add("tests", {"command": " ".join(command[1:]), "rc": done.returncode,
                             "summary": tail[0]})  # fmt: skip
    except subprocess.TimeoutExpired:
        report.add("tests", {"command": " ".join(command[1:]), "rc": "timeout"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the code paths")
    parser.add_argument("--out", default="runs/bench/gpu", help="folder for gpu.json / gpu.md")
    parser.add_argument("--sections", nargs="*", default=["tests", "loss", "train", "inference"])
    parser.add_argument(
        "--archs", nargs="*", default=None, help="default: all (--quick: lraspp_mbv3 only)"
    )
    args = parser.parse_args(argv)
    if args.archs is None:
        args.archs = ["lraspp_mbv3"] if args.quick else list(ARCH_TRAIN_SHAPES)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench/gpu.py: error: no CUDA device; use --device cpu --quick", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "python": platform.python_version(),
        "cuda": torch.version.cuda, "quick": args.quick,
    }  # fmt: skip
    report = Report(Path(args.out), meta)
    started = time.perf_counter()
    sections = {
        "tests": lambda: cuda_tests(report, args.quick),
        "loss": lambda: loss_cases(report, device, args.quick),
        "train": lambda: train_cases(report, device, args.quick, args.archs),
        "inference": lambda: inference_cases(report, device, args.quick, args.archs),
    }
    for name in args.sections:
        try:
            sections[name]()
        except Exception as error:  # a broken section must not hide the others' results
            report.add(name, {"error": f"{type(error).__name__}: {str(error)[:300]}"})
    report.data["meta"]["wall_s"] = round(time.perf_counter() - started, 1)
    report.save()
    print(f"wrote {report.out / 'gpu.json'} and {report.out / 'gpu.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
