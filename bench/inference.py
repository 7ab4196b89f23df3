"""CPU inference benchmark through the shipped backends: every path of `zoo.backends.BACKENDS`.

    python bench/inference.py --frames /tmp/synth512/leftImg8bit/val \
        [--archs lraspp_mbv3 ...] [--checkpoint ARCH=PATH] [--sizes 512x1024 512x512] \
        [--runs 5] [--rounds 3] [--threads 2] [--work /tmp/cpg-bench] [--json out.json]
    python bench/inference.py --render out.json

Per architecture a model directory, exported once into `--work` with fp32 + int8 (calibrated on
8 of the `--frames` at 256x512) from `--checkpoint ARCH=PATH` (a checkpoint or a model
directory, e.g. the built-in `zoo/assets/models/lraspp_mbv3_synthcity_cpg`), else from
BN-calibrated random weights (speed does not depend on training; their agreement is noise).
Every CPU path of the backend table is loaded with `zoo.load(dir, backend, precision,
device="cpu", num_threads=--threads)` in this one process (torch eager, ONNX Runtime fp32 /
int8, OpenVINO fp32 / bf16 / int8, and "onnx/fp32-numpy": ONNX Runtime fp32 with the pre- and
post-processing in numpy, i.e. `predict` as it was before the in-graph processing), then
`--rounds` rounds run every path in turn (the starting path rotating), `--runs` times each:

- model: `segmenter.backend.run(x)`, the network alone on a normalised float32 batch;
- predict: `segmenter.predict(frame)`, end to end from the decoded uint8 frame to the mask.

Latency is the median of all rounds' runs (the minimum in brackets). Accuracy: the masks of up
to `--limit` frames of the labelled split, resized to the size, against ONNX Runtime fp32's
(argmax agreement) and against the labels (mIoU drop). The path `zoo.load(dir)` takes by
default on this CPU is marked. `--ort-profile` prints ONNX Runtime's operator profile instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from zoo.archs import ARCHITECTURES, published_archs
from zoo.backends import BACKENDS

BASELINE = "onnx/fp32-numpy"  # `predict` before in-graph processing: today's default
REFERENCE = "onnx/fp32"
PATHS = (
    *(
        f"{name}/{precision}"
        for name, row in BACKENDS.items()
        if "cpu" in row.devices
        for precision in row.files
        if precision != "fp16"  # meant for GPUs (bench/gpu.py)
    ),
    BASELINE,
)


def prepare(
    arch: str,
    work: Path,
    checkpoint: str | None,
    frames: Path,
    classes: int,
    int8_gate: float | None = None,
) -> Path:
    """A model directory for `arch` in `work`, exported once from `checkpoint` (a checkpoint or
    a model directory; None: random BN-calibrated weights) with fp32 + int8 calibrated on
    `frames`; the export also measures the accuracy-gate figures into eval.json."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as bench/inference.py
    from bench.synthetic import random_checkpoint
    from export import ParityGates, export_model

    model_dir = work / arch
    if (model_dir / "model.int8.onnx").is_file():
        return model_dir
    random_weights = checkpoint is None
    if random_weights:
        checkpoint = str(random_checkpoint(arch, work / f"{arch}.pt", num_classes=classes))
    export_model(
        checkpoint,
        model_dir,
        int8=True,
        calib_data=frames,
        calib_size=(256, 512),
        calib_limit=8,
        shapes=((1, 3, 128, 256), (1, 3, 97, 129)),
        # random weights: int8 agreement reported, not gated (near-tied random logits)
        gates=ParityGates(int8_min_agreement=0.0, fp32_max_abs_diff=5e-3)
        if random_weights
        else None
        if int8_gate is None
        else ParityGates(int8_min_agreement=int8_gate),
        command="bench/inference.py",
    )
    return model_dir


def load_paths(model_dir: Path, threads: int) -> tuple[dict, dict[str, str]]:
    """{path: Segmenter} of every path that loads here, {path: why not} of the others."""
    from export.precision_gates import load_ungated
    from zoo.errors import ModelNotAvailableError

    segmenters, skipped = {}, {}
    for path in PATHS:
        backend, precision = path.removesuffix("-numpy").split("/")
        try:
            segmenter = load_ungated(model_dir, backend, precision, threads)
        except (ImportError, ModelNotAvailableError, RuntimeError, ValueError) as error:
            skipped[path] = str(error).splitlines()[0][:200]
            continue
        if path == BASELINE:
            segmenter.backend.pixels = None  # numpy normalisation, argmax and softmax
        segmenters[path] = segmenter
    return segmenters, skipped


def frames_at(frames: Path, size: tuple[int, int], limit: int, config) -> tuple[list, list | None]:
    """Up to `limit` labelled frames resized to `size`: uint8 images and labels (or None)."""
    from export.images import load_calibration_set

    found = load_calibration_set(frames, size, config.mean, config.std, limit=limit)
    return found.rgb, found.labels


def measure(model_dir: Path, size: tuple[int, int], args: argparse.Namespace) -> dict:
    """All paths at `size`: timings interleaved, accuracy against ONNX Runtime fp32."""
    import zoo
    from export.parity import mean_iou
    from zoo.preprocess import normalize

    segmenters, skipped = load_paths(model_dir, args.threads)
    config = next(iter(segmenters.values())).config
    images, labels = frames_at(Path(args.frames), size, args.limit, config)
    pixels = images[0]
    batch = normalize([pixels], config.mean, config.std)
    order = list(segmenters)

    def model(path: str) -> None:
        segmenters[path].backend.run(batch)

    def predict(path: str) -> None:
        segmenters[path].predict(pixels)

    times: dict[str, dict[str, list[float]]] = {p: {"model": [], "predict": []} for p in order}
    for path in order:  # warm-up: compiles the graphs each path uses
        for step in (model, predict) * args.warmup:
            step(path)
    for round_index in range(args.rounds):
        start = round_index % len(order)
        for path in order[start:] + order[:start]:
            for kind, step in (("model", model), ("predict", predict)):
                for _ in range(args.runs):
                    begin = time.perf_counter()
                    step(path)
                    times[path][kind].append(time.perf_counter() - begin)

    masks = {path: list(segmenters[path].predict(images)) for path in order}
    reference = masks.get(REFERENCE)
    results: dict = {"skipped": skipped, "paths": {}}
    for path in order:
        figures: dict = {
            kind: {"median_s": statistics.median(t), "min_s": min(t), "runs": len(t)}
            for kind, t in times[path].items()
        }
        if reference is not None:
            same = sum(int((a == b).sum()) for a, b in zip(masks[path], reference, strict=True))
            figures["agreement"] = same / sum(m.size for m in reference)
        if labels is not None:
            figures["miou"] = mean_iou(masks[path], labels, config.num_classes, 255)
        results["paths"][path] = figures
    if labels is not None and REFERENCE in results["paths"]:
        for figures in results["paths"].values():
            figures["miou_drop"] = results["paths"][REFERENCE]["miou"] - figures["miou"]
    default = zoo.load(model_dir, device="cpu", num_threads=args.threads)
    results["default"] = f"{default.backend_name}/{default.precision}"
    results["selection"] = default.selection
    results["frames"] = len(images)
    return results


def machine() -> dict:
    from zoo.backend_openvino import openvino_capabilities
    from zoo.devices import cpu_name

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_name(),
        "openvino_capabilities": openvino_capabilities(),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def markdown(results: dict) -> str:
    """One row per (arch, size, path): ms per image, ratios, accuracy."""

    def ms(figures: dict) -> str:
        return f"{figures['median_s'] * 1e3:.1f} ({figures['min_s'] * 1e3:.1f})"

    def ratio(a: dict | None, b: dict | None) -> str:
        if a is None or b is None:
            return "-"
        return f"{b['median_s'] / a['median_s']:.2f}x ({b['min_s'] / a['min_s']:.2f}x)"

    lines = [
        "| arch | size | path | model ms | predict ms | predict / model | predict speed-up vs "
        "ORT fp32 numpy | vs torch eager | agreement | mIoU drop (points) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        paths = row["paths"]
        baseline = paths.get(BASELINE, {}).get("predict")
        torch_eager = paths.get("torch/fp32", {}).get("predict")
        for path, figures in paths.items():
            name = f"**{path}** (default)" if path == row["default"] else path
            share = figures["predict"]["median_s"] / figures["model"]["median_s"]
            agreement = figures.get("agreement")
            drop = figures.get("miou_drop")
            lines.append(
                f"| {row['arch']} | {row['size']} | {name} | {ms(figures['model'])} "
                f"| {ms(figures['predict'])} | {share:.2f} "
                f"| {ratio(figures['predict'], baseline)} "
                f"| {ratio(figures['predict'], torch_eager)} "
                f"| {f'{agreement:.2%}' if agreement is not None else '-'} "
                f"| {f'{drop * 100:.2f}' if drop is not None else '-'} |"
            )
    skipped = {
        f"{r['arch']} {r['size']} {p}": why
        for r in results["rows"]
        for p, why in r["skipped"].items()
    }
    for case, why in skipped.items():
        lines.append(f"\nnot run: {case}: {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", help="a labelled split, e.g. /tmp/synth512/leftImg8bit/val")
    parser.add_argument(
        "--archs", nargs="+", default=published_archs(), choices=tuple(ARCHITECTURES)
    )
    parser.add_argument("--checkpoint", action="append", default=[], help="ARCH=PATH (dir/ckpt)")
    parser.add_argument("--sizes", nargs="+", default=["512x1024", "512x512"])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per path and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per path and kind")
    parser.add_argument("--limit", type=int, default=8, help="frames for the accuracy figures")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--int8-gate",
        type=float,
        default=None,
        help="the export's int8 agreement gate for --checkpoint models (default: the export's; "
        "a lower one measures an int8 file the export would refuse: the runtime still gates it)",
    )
    parser.add_argument("--num-classes", type=int, default=19)
    parser.add_argument("--work", default="/tmp/cpg-bench")
    parser.add_argument("--json", help="write all figures here")
    parser.add_argument("--render", metavar="JSON", help="print the table of a saved run")
    parser.add_argument("--ort-profile", action="store_true", help="ORT operator profiles")
    args = parser.parse_args(argv)
    if args.render:
        print(markdown(json.loads(Path(args.render).read_text())))
        return 0
    if not args.frames or not Path(args.frames).is_dir():
        parser.error("--frames: a folder of labelled frames is needed (zoo data synthcity ...)")
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    work = Path(args.work)
    results: dict = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    results["command"] = " ".join(["python", "bench/inference.py", *(argv or sys.argv[1:])])
    rows = []
    for arch in args.archs:
        model_dir = prepare(
            arch, work, checkpoints.get(arch), Path(args.frames), args.num_classes, args.int8_gate
        )
        for size_text in args.sizes:
            size = tuple(int(v) for v in size_text.split("x"))
            if args.ort_profile:
                for name in ("model.onnx", "model.int8.onnx"):
                    print(f"\n{arch} {size_text}, {name}, ORT operators:")
                    print(ort_op_profile(model_dir / name, size, args.threads))
                continue
            row = {"arch": arch, "size": size_text, **measure(model_dir, size, args)}
            print(
                arch,
                size_text,
                row["default"],
                {p: round(f["predict"]["median_s"], 4) for p, f in row["paths"].items()},
                flush=True,
            )
            rows.append(row)
            results["rows"] = rows
            if args.json:  # after every case: a long run keeps what it measured
                Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    results["load_avg_1m_end"] = round(os.getloadavg()[0], 1)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if rows:
        print(markdown(results))
    return 0


def ort_op_profile(model_path: Path, size: tuple[int, int], threads: int, runs: int = 5) -> str:
    """ONNX Runtime's own profiler: ms per run and share per operator type, after a warm-up."""
    import collections

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    options.profile_file_prefix = str(model_path.parent / ".ort-profile")
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)
    for _ in range(1 + runs):
        session.run(None, {session.get_inputs()[0].name: x})
    events = json.loads(Path(session.end_profiling()).read_text())
    first = min(
        (e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"),
        key=lambda e: e["ts"],
    )
    total: collections.Counter[str] = collections.Counter()
    for event in events:
        after_warm_up = event["ts"] >= first["ts"] + first["dur"]
        if after_warm_up and event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            total[event["args"]["op_name"]] += event["dur"]
    overall = sum(total.values())
    lines = [
        "| op | ms per run | share |",
        "|---|---|---|",
        f"| all | {overall / runs / 1e3:.1f} | 100% |",
    ]
    for op, microseconds in total.most_common(8):
        lines.append(f"| {op} | {microseconds / runs / 1e3:.1f} | {microseconds / overall:.1%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
