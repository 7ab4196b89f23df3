"""Benchmark `zoo predict` (batch prediction, end to end) on 1024x2048 frames, CPU.

    python bench/predict.py [--frames 200] [--workdir /tmp/cpg-zoo-bench-predict]

Generates the frames once (SynthCity street scenes when `training.data.synthcity` is
importable, else smooth random images) and an lraspp_mbv3 Cityscapes model directory with
random, BatchNorm-calibrated weights (speed does not depend on training), then times
`zoo predict FOLDER --model DIR --device cpu` for ONNX Runtime and torch, with the default
`--max-side` (1024: frames run at 512x1024) and at full resolution (`--max-side 0`). Images/s
include decoding, inference, upsampling, PNG encoding and writing. Writes the table into the
"## Batch prediction" section of docs/benchmarks.md (`--no-docs` to skip).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers_modeldir import make_model_dir, smooth_image  # noqa: E402
from zoo.predict_cli import main as predict_main  # noqa: E402

SECTION = "## Batch prediction"
DOCS = ROOT / "docs" / "benchmarks.md"


def _synthcity_frame(index: int, size: tuple[int, int]) -> np.ndarray:
    from training.data.synthcity import frame_rng, render_frame

    return render_frame(frame_rng(0, "val", index), size)[0]


def _smooth_frame(index: int, size: tuple[int, int]) -> np.ndarray:
    return smooth_image(*size, seed=index)


def _write_frame(job: tuple[Path, int, tuple[int, int], bool]) -> None:
    path, index, size, synthcity = job
    frame = (_synthcity_frame if synthcity else _smooth_frame)(index, size)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(frame).save(tmp)
    tmp.replace(path)


def generate_frames(folder: Path, count: int, size: tuple[int, int]) -> str:
    """Write `count` PNG frames into `folder` (kept between runs); return their source."""
    try:
        import training.data.synthcity  # noqa: F401

        synthcity, source = True, "SynthCity street scenes"
    except ImportError:
        synthcity, source = False, "smooth random images"
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"frame_{i:04d}.png", i, size, synthcity) for i in range(count)]
    jobs = [job for job in jobs if not job[0].exists()]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(_write_frame, jobs))
    return source


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(files: list[Path], model: Path, out: Path, backend: str, max_side: str | None) -> float:
    """Seconds for one `zoo predict` over `files`."""
    shutil.rmtree(out, ignore_errors=True)
    argv = [*map(str, files), "--model", str(model), "--backend", backend, "--device", "cpu"]
    argv += ["--out", str(out), "--quiet"]
    if max_side is not None:
        argv += ["--max-side", max_side]
    start = time.perf_counter()
    code = predict_main(argv)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"zoo predict failed with exit code {code}")
    return elapsed


def write_section(text: str) -> None:
    """Replace (or append) the "## Batch prediction" section of docs/benchmarks.md."""
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    old = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        new = (
            "".join(lines[:start])
            + text
            + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
        )
    tmp = DOCS.with_suffix(".md.tmp")
    tmp.write_text(new)
    tmp.replace(DOCS)


RUNS = {  # name -> (backend, --max-side value, label)
    "onnx:default": ("onnx", None, "default (1024: runs at 512x1024)"),
    "onnx:full": ("onnx", "0", "0 (full res)"),
    "torch:default": ("torch", None, "default (1024: runs at 512x1024)"),
    "torch:full": ("torch", "0", "0 (full res)"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cpg-zoo-bench-predict"
    )
    parser.add_argument(
        "--runs", default=",".join(RUNS), help=f"comma-separated subset of {', '.join(RUNS)}"
    )
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    runs = args.runs.split(",")
    if unknown := sorted(set(runs) - RUNS.keys()):
        parser.error(f"unknown run(s) {unknown}; choose from {', '.join(RUNS)}")

    size = (args.height, args.width)
    frames = args.workdir / f"frames_{args.height}x{args.width}"
    t0 = time.perf_counter()
    source = generate_frames(frames, args.frames, size)
    files = sorted(frames.glob("frame_*.png"))[: args.frames]
    print(f"{len(files)} frames ({source}) in {frames} [{time.perf_counter() - t0:.0f} s]")
    model = args.workdir / "lraspp_mbv3_cityscapes_random"
    if not (model / "model.onnx").exists():
        make_model_dir(model, num_classes=19, input_size=(512, 1024))

    # Results accumulate in the workdir, so runs can be made (or repeated) separately.
    results_path = args.workdir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name in runs:
        backend, max_side, label = RUNS[name]
        load = os.getloadavg()[0]
        seconds = run(files, model, args.workdir / "out", backend, max_side)
        load = max(load, os.getloadavg()[0])
        results[name] = {
            "frames": len(files),
            "seconds": seconds,
            "load": load,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
        results_path.write_text(json.dumps(results, indent=2))
        print(f"{name:14s} {seconds:7.1f} s  {len(files) / seconds:6.2f} images/s  load {load:.1f}")

    import onnxruntime
    import torch

    table = [
        "| backend | --max-side | frames | seconds | images/s | load avg (1 min) | date |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (backend, _, label) in RUNS.items():
        if name in results:
            r = results[name]
            table.append(
                f"| {backend} | {label} | {r['frames']} | {r['seconds']:.1f} | "
                f"{r['frames'] / r['seconds']:.2f} | {r['load']:.1f} | {r['date']} |"
            )
    text = "\n".join(
        [
            SECTION,
            "",
            f"`zoo predict FILES --model DIR --device cpu` over PNG frames of "
            f"{args.width}x{args.height} ({source}), lraspp_mbv3 with 19 classes and random, "
            "BatchNorm-calibrated weights (speed does not depend on training). End to end: "
            "decoding (2 prefetch threads), inference, logit upsampling, palette-PNG encoding and "
            "atomic writes, batch size 1; model loading (once) included.",
            "",
            *table,
            "",
            "- command: `python bench/predict.py` (all four runs on 200 frames; "
            "`--runs torch:full --frames N` repeats one run on the first N frames)",
            f"- machine: {os.cpu_count()} CPU cores (nproc), {cpu_model()}, no GPU; shared with "
            "other jobs while measured: the load column is the 1-minute load average (max of "
            "start and end); 2 would mean the two cores ran this benchmark alone, so at loads "
            "of 10+ these figures are several times below what the machine does unloaded",
            f"- software: Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}"
            f" (CPUExecutionProvider), torch {torch.__version__}",
            "",
        ]
    )
    print(text)
    if not args.no_docs:
        write_section(text)
        print(f"wrote the {SECTION!r} section of {DOCS}")


if __name__ == "__main__":
    main()
