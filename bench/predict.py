"""Benchmark `zoo predict` (batch prediction, end to end) on 1024x2048 frames, CPU.

    python bench/predict.py [--frames 200] [--workdir /tmp/cpg-zoo-bench-predict] [--model M]

Generates the frames once (SynthCity street scenes when `training.data.synthcity` is
importable, else smooth random images), then times `zoo predict FOLDER --model M --device
cpu` (default model: the built-in `lraspp_mbv3_synthcity_cpg`, whose eval.json holds the
accuracy-gate figures, so `auto` takes the default CPU path) for the default path (`auto`),
ONNX Runtime fp32 and torch, with the default `--max-side` (1024: frames run at 512x1024) and
at full resolution (`--max-side 0`). Images/s include decoding, inference, upsampling, PNG
encoding and writing (decoding and writing run in threads beside inference). Beside each run:
the model-only throughput of the same path at the same size (`backend.run` on a normalised
batch, in this process) and the ratio of the two. Writes the table into the
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

from bench.synthetic import smooth_image  # noqa: E402
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


def run(
    files: list[Path], model: str, out: Path, backend: str, precision: str, max_side: str | None
) -> float:
    """Seconds for one `zoo predict` over `files`."""
    shutil.rmtree(out, ignore_errors=True)
    argv = [*map(str, files), "--model", model, "--backend", backend, "--device", "cpu"]
    argv += ["--precision", precision, "--out", str(out), "--quiet"]
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


def model_only(
    model: str, backend: str, precision: str, frame: Path, max_side: str | None, runs: int = 5
) -> tuple[str, float]:
    """(the path `zoo.load` took, images/s of the network alone at the size `predict` runs
    the frame at: `backend.run` on a normalised batch, median of `runs` after a warm-up)."""
    import zoo
    from zoo.preprocess import normalize, read_image, resize_rgb, scaled_size

    side = None if max_side == "0" else (int(max_side) if max_side else 1024)
    segmenter = zoo.load(model, backend=backend, precision=precision, device="cpu")
    rgb = read_image(frame)
    rgb = resize_rgb(rgb, scaled_size(*rgb.shape[:2], side))
    batch = normalize([rgb], segmenter.config.mean, segmenter.config.std)
    segmenter.backend.run(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        segmenter.backend.run(batch)
        times.append(time.perf_counter() - start)
    times.sort()
    return f"{segmenter.backend_name}/{segmenter.precision}", 1 / times[len(times) // 2]


def stage_profile(model: str, frame: Path, runs: int = 5) -> dict[str, float]:
    """Median ms of each step `zoo predict` takes for one frame on the default path, in this
    process and one at a time (where the time of a frame goes; the CLI overlaps them)."""
    import io

    import zoo
    from zoo import preprocess

    segmenter = zoo.load(model, device="cpu")
    decoded = preprocess.decode(str(frame), reduce_to=1024)
    small = preprocess.resize_rgb(decoded.rgb, preprocess.scaled_size(*decoded.size, 1024))
    batch = preprocess.normalize([small], segmenter.config.mean, segmenter.config.std)
    logits = segmenter._run([small], "logits")[0]
    mask = preprocess.argmax_resized(logits, decoded.size)

    def encode() -> bytes:
        buffer = io.BytesIO()
        segmenter.mask_image(mask).save(buffer, "PNG")
        return buffer.getvalue()

    steps = {
        "decode PNG": lambda: preprocess.decode(str(frame), reduce_to=1024),
        "downscale to 512x1024": lambda: preprocess.resize_rgb(decoded.rgb, small.shape[:2]),
        "model alone (backend.run)": lambda: segmenter.backend.run(batch),
        "uint8 -> logits (graph)": lambda: segmenter._run([small], "logits"),
        "logits -> full-size mask": lambda: preprocess.argmax_resized(logits, decoded.size),
        "encode palette PNG": encode,
    }
    profile = {}
    for name, step in steps.items():
        step()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        profile[name] = sorted(times)[runs // 2] * 1e3
    return profile


DEFAULT_LABEL = "default (1024: runs at 512x1024)"
RUNS = {  # name -> (backend, precision, --max-side value, label)
    "auto:default": ("auto", "auto", None, DEFAULT_LABEL),
    "auto:full": ("auto", "auto", "0", "0 (full res)"),
    "onnx:default": ("onnx", "fp32", None, DEFAULT_LABEL),
    "onnx:full": ("onnx", "fp32", "0", "0 (full res)"),
    "torch:default": ("torch", "fp32", None, DEFAULT_LABEL),
    "torch:full": ("torch", "fp32", "0", "0 (full res)"),
}


def _openvino_version() -> str:
    try:
        import openvino

        return openvino.__version__.split("-")[0]
    except ImportError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cpg-zoo-bench-predict"
    )
    parser.add_argument(
        "--runs",
        default="auto:default,onnx:default",
        help=f"comma-separated subset of {', '.join(RUNS)}",
    )
    parser.add_argument("--model", default="lraspp_mbv3_synthcity_cpg")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="ms per step of one frame, then exit"
    )
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
    if args.profile:
        load = os.getloadavg()[0]
        for name, ms in stage_profile(args.model, files[0]).items():
            print(f"| {name} | {ms:.1f} |")
        print(f"load average {load:.1f} -> {os.getloadavg()[0]:.1f}")
        return
    model = args.model

    # Results accumulate in the workdir, so runs can be made (or repeated) separately.
    results_path = args.workdir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name in runs:
        backend, precision, max_side, label = RUNS[name]
        load = os.getloadavg()[0]
        path, before = model_only(model, backend, precision, files[0], max_side)
        seconds = run(files, model, args.workdir / "out", backend, precision, max_side)
        _, after = model_only(model, backend, precision, files[0], max_side)
        load = max(load, os.getloadavg()[0])
        results[name] = {
            "frames": len(files),
            "seconds": seconds,
            "path": path,
            "model_images_per_s": (before + after) / 2,
            "load": load,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
        results_path.write_text(json.dumps(results, indent=2))
        speed = len(files) / seconds
        print(
            f"{name:14s} {path:14s} {seconds:7.1f} s  {speed:6.2f} images/s  model alone "
            f"{results[name]['model_images_per_s']:6.2f}/s  load {load:.1f}"
        )

    import onnxruntime
    import torch

    table = [
        "| --backend | path | --max-side | frames | seconds | images/s | model alone, images/s "
        "| ratio | load avg (1 min) | date |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, (backend, _, _, label) in RUNS.items():
        if name in results and "path" in results[name]:
            r = results[name]
            speed = r["frames"] / r["seconds"]
            table.append(
                f"| {backend} | {r['path']} | {label} | {r['frames']} | {r['seconds']:.1f} | "
                f"{speed:.2f} | {r['model_images_per_s']:.2f} | "
                f"{speed / r['model_images_per_s']:.2f} | {r['load']:.1f} | {r['date']} |"
            )
    text = "\n".join(
        [
            SECTION,
            "",
            f"`zoo predict FILES --model DIR --device cpu` over PNG frames of "
            f"{args.width}x{args.height} ({source}), model `{model}`. End to end: decoding "
            "(2 threads), inference, logit upsampling, palette-PNG encoding and atomic writes "
            '(2 threads), batch size 1; model loading (once) included. "model alone": the '
            "same path's `backend.run` on one normalised frame at the size it runs at (median "
            "of 5, before and after the run, averaged); ratio = images/s over that.",
            "",
            *table,
            "",
            f"- command: `python bench/predict.py --frames {len(files)} --runs {args.runs}` "
            "(`--runs NAME --frames N` repeats one run on the first N frames)",
            f"- machine: {os.cpu_count()} CPU cores (nproc), {cpu_model()}, no GPU; shared with "
            "other jobs while measured: the load column is the 1-minute load average (max of "
            "start and end); 2 would mean the two cores ran this benchmark alone, so at loads "
            "of 10+ these figures are several times below what the machine does unloaded",
            f"- software: Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}"
            f" (CPUExecutionProvider), openvino {_openvino_version()}, torch {torch.__version__}",
            "",
        ]
    )
    print(text)
    if not args.no_docs:
        write_section(text)
        print(f"wrote the {SECTION!r} section of {DOCS}")


if __name__ == "__main__":
    main()
