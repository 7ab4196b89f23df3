"""Inference benchmark: torch eager vs ONNX Runtime fp32 vs int8 (and torch bf16), CPU; GPU too.

    python bench/inference.py [--archs lraspp_mbv3 ...] [--sizes 512x1024 512x512]
                              [--runs 10] [--threads 2] [--work /tmp/cpg-bench] [--json out.json]
    python bench/inference.py --backends torch_cuda torch_cuda_fp16 ort_cuda ort_cuda_fp16 \
                              ort_trt ort_trt_fp16 ort_fp32     # on a machine with a GPU

Per architecture it exports a model directory (BN-calibrated random weights unless
`--checkpoint ARCH=PATH` gives a trained one; int8 calibrated on `--calib-data` for a trained
one, else on synthetic images) and then times every (arch, size, backend) case in its own
subprocess, so that peak memory (VmHWM) belongs to that case alone; `--rounds` repeats each
case, backends interleaved. Batch 1, latency = median of all `--rounds` x `--runs` timed runs
(each process warms up first). Prints a Markdown table (for docs/benchmarks.md) and writes all
figures as JSON; `--render JSON` prints the tables of a saved run again. A second table gives
each CPU backend's compute rate: the network's forward FLOPs (`flops.py`) over its median
latency.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from zoo.archs import ARCHITECTURES, published_archs

BACKENDS = ("torch", "torch_bf16", "ort_fp32", "ort_int8", "ort_int8_pt")
# GPU: torch eager fp32 / fp16 autocast; ORT CUDA EP on model.onnx / model.fp16.onnx; ORT
# TensorRT EP (fp32, fp16 kernels allowed). Timings include the copy of the logits to the host,
# as ORT's `run` returns them there. Needs onnxruntime-gpu for the ORT ones (README).
GPU_BACKENDS = (
    "torch_cuda",
    "torch_cuda_fp16",
    "ort_cuda",
    "ort_cuda_fp16",
    "ort_trt",
    "ort_trt_fp16",
)
ORT_PROVIDERS: dict[str, list] = {
    "ort_fp32": ["CPUExecutionProvider"],
    "ort_int8": ["CPUExecutionProvider"],
    "ort_int8_pt": ["CPUExecutionProvider"],
    "ort_cuda": ["CUDAExecutionProvider"],
    "ort_cuda_fp16": ["CUDAExecutionProvider"],
    "ort_trt": [("TensorrtExecutionProvider", {})],
    "ort_trt_fp16": [("TensorrtExecutionProvider", {"trt_fp16_enable": True})],
}
PER_TENSOR_NAME = "model.int8-per-tensor.onnx"  # bench-only variant: per-tensor weight scales
ARCHS = tuple(ARCHITECTURES)  # every arch can be benchmarked; the default is the published ones


def run_case(model_dir: Path, backend: str, size: tuple[int, int], runs: int, threads: int) -> dict:
    """Time one case in this process; returns latency figures, peak RSS and argmax map."""
    import numpy as np

    from export.images import synthetic_images
    from zoo.config import ONNX_FP16_NAME, ONNX_INT8_NAME, ONNX_NAME, ModelConfig

    config = ModelConfig.load(model_dir)
    x = synthetic_images((1, 3, *size), config.mean, config.std, seed=123)
    gpu = backend in GPU_BACKENDS
    free_gpu_memory = gpu_memory_probe() if gpu else None
    if backend.startswith("ort"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        names = {
            "ort_int8": ONNX_INT8_NAME,
            "ort_int8_pt": PER_TENSOR_NAME,
            "ort_cuda_fp16": ONNX_FP16_NAME,
        }
        name = names.get(backend, ONNX_NAME)
        providers = ORT_PROVIDERS[backend]
        if backend.startswith("ort_trt"):  # engines are built per shape: cache them
            providers = [(providers[0][0], {**providers[0][1], **trt_cache(model_dir)})]
        session = ort.InferenceSession(str(model_dir / name), options, providers=providers)
        wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
        if session.get_providers()[0] != wanted:
            raise RuntimeError(f"{wanted} is not usable here (got {session.get_providers()})")

        def forward() -> np.ndarray:
            return session.run(["logits"], {"input": x})[0]
    else:
        import torch

        from export.checkpoint import build_for_export, load_checkpoint

        torch.set_num_threads(threads)
        if gpu and not torch.cuda.is_available():
            raise RuntimeError(f"{backend}: torch sees no CUDA device")
        device = "cuda" if gpu else "cpu"
        model = build_for_export(load_checkpoint(model_dir)).to(device)
        tensor = torch.from_numpy(x).to(device)
        dtype = torch.float16 if gpu else torch.bfloat16
        reduced = backend in ("torch_bf16", "torch_cuda_fp16")

        def forward() -> np.ndarray:
            with torch.inference_mode(), torch.autocast(device, dtype, enabled=reduced):
                return model(tensor)["out"].float().cpu().numpy()

    for _ in range(2 if not gpu else 5):
        forward()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        logits = forward()
        times.append(time.perf_counter() - start)
    labels_path = model_dir / f".labels-{backend}-{size[0]}x{size[1]}.npy"
    np.save(labels_path, logits.argmax(1).astype(np.uint8))
    figures = {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "times_s": times,
        "peak_rss_mb": peak_rss_mb(),
        "labels": str(labels_path),
    }
    if free_gpu_memory is not None:
        figures["gpu_memory_mb"] = (free_gpu_memory - (gpu_memory_probe() or 0)) / 2**20
    return figures


def gpu_memory_probe() -> int | None:
    """Free device memory in bytes (device-wide, so it sees ONNX Runtime's arena too), or None
    where torch cannot tell. Used as a before/after difference: the memory a case holds."""
    try:
        import torch

        return torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else None
    except (ImportError, RuntimeError):
        return None


def trt_cache(model_dir: Path) -> dict[str, object]:
    """TensorRT EP options: keep built engines beside the model (one per input shape)."""
    cache = model_dir / ".trt-cache"
    cache.mkdir(exist_ok=True)
    return {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}


def ort_op_profile(
    model_path: Path, size: tuple[int, int], threads: int, runs: int = 5, top: int = 8
) -> str:
    """ONNX Runtime's own profiler: time per operator type (ms per run, share) over `runs`
    runs after one warm-up run (the profiler slows kernels a little: shares matter)."""
    import collections

    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    options.profile_file_prefix = str(model_path.parent / ".ort-profile")
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)
    for _ in range(1 + runs):
        session.run(None, {"input": x})
    events = json.loads(Path(session.end_profiling()).read_text())
    first_run = min(
        (e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"),
        key=lambda e: e["ts"],
    )
    warm_up_end = first_run["ts"] + first_run["dur"]
    total: collections.Counter[str] = collections.Counter()
    for event in events:
        if event["ts"] < warm_up_end:
            continue
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            total[event["args"]["op_name"]] += event["dur"]
    overall = sum(total.values())
    lines = ["| op | ms per run | share |", "|---|---|---|"]
    lines.append(f"| all | {overall / runs / 1e3:.1f} | 100% |")
    for op, microseconds in total.most_common(top):
        lines.append(f"| {op} | {microseconds / runs / 1e3:.1f} | {microseconds / overall:.1%} |")
    return "\n".join(lines)


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited on exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(
    arch: str,
    work: Path,
    checkpoint: str | None,
    num_classes: int,
    calib_data: str | None = None,
) -> Path:
    """Model directory for `arch` (fp32 + int8), exported once and reused. int8 is calibrated
    on `calib_data` (a folder of images, labels found beside them give the mIoU drop in the
    export report) or on synthetic images."""
    from PIL import Image

    from export import ParityGates, export_model
    from export.testing import random_checkpoint

    model_dir = work / arch
    if (model_dir / PER_TENSOR_NAME).is_file() and (model_dir / "model.fp16.onnx").is_file():
        return model_dir
    calib = Path(calib_data) if calib_data else work / "calib"
    if not calib.is_dir():
        from export.images import synthetic_images

        calib.mkdir(parents=True)
        for seed in range(8):
            image = synthetic_images((1, 3, 512, 1024), [0.0] * 3, [1 / 255] * 3, seed=seed)
            rgb = image[0].transpose(1, 2, 0).clip(0, 255).astype("uint8")
            Image.fromarray(rgb).save(calib / f"{seed}.png")
    # Random weights: the int8 agreement is measured and reported, not gated, and the fp32
    # logit tolerance is 5e-3 (BN-recalibrated random HRNet-OCR logits reach |36|, where
    # float32 differences of ~1e-3 are 3e-5 relative); trained models get the default gates.
    random_weights = checkpoint is None
    gates = (
        ParityGates(int8_min_agreement=0.0, fp32_max_abs_diff=5e-3)
        if random_weights
        else ParityGates(int8_min_agreement=0.98)
    )
    if checkpoint is None:
        checkpoint = str(random_checkpoint(arch, work / f"{arch}.pt", num_classes=num_classes))
    export_model(
        checkpoint,
        model_dir,
        int8=True,
        fp16=True,
        calib_data=calib,
        calib_size=(256, 512),
        calib_limit=16 if calib_data else 8,
        shapes=((1, 3, 128, 256), (1, 3, 97, 129), (2, 3, 64, 96)),
        gates=gates,
        command="bench/inference.py",
    )
    from export.images import load_calibration_set
    from export.quantize import quantize_int8
    from zoo.config import ModelConfig

    config = ModelConfig.load(model_dir)
    images = load_calibration_set(calib, (256, 512), config.mean, config.std, limit=8).images
    quantize_int8(model_dir / "model.onnx", model_dir / PER_TENSOR_NAME, images, per_channel=False)
    return model_dir


def forward_gflop(arch: str, num_classes: int, size: tuple[int, int]) -> float:
    """GFLOP of one batch-1 forward at `size` (convolutions and matmuls, 2 per multiply-add),
    counted on the meta device: shapes only, nothing is computed."""
    import torch
    from flops import forward_flops

    from zoo.models import build_model

    with torch.device("meta"):
        model = build_model(arch, num_classes=num_classes).eval()
    return forward_flops(model, 1, *size) / 1e9


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"nproc": os.cpu_count(), "cpu": cpu, "load_avg_1m": round(load, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=published_archs(), choices=ARCHS)
    parser.add_argument("--sizes", nargs="+", default=["512x1024", "512x512"])
    parser.add_argument(
        "--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS + GPU_BACKENDS
    )
    parser.add_argument("--runs", type=int, default=10, help="timed runs per case and round")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="each case runs this often, backends interleaved, so that a busy spell of a "
        "shared machine falls on all backends alike; latency = median over all runs",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-classes", type=int, default=19)
    parser.add_argument("--checkpoint", action="append", default=[], help="ARCH=PATH")
    parser.add_argument(
        "--calib-data", help="int8 calibration images (e.g. a SynthCity val folder)"
    )
    parser.add_argument("--work", default="/tmp/cpg-bench")
    parser.add_argument("--json", default=None, help="write all figures here")
    parser.add_argument(
        "--ort-profile", action="store_true", help="per-operator ORT profile of each model"
    )
    parser.add_argument("--render", metavar="JSON", help="print the tables of a saved --json run")
    parser.add_argument("--case", nargs=5, metavar=("DIR", "BACKEND", "H", "W", "RUNS"))
    args = parser.parse_args(argv)

    if args.render:  # rows saved before FLOPs were counted get them (with --num-classes)
        saved = json.loads(Path(args.render).read_text())
        for row in saved["rows"]:
            if "gflop" not in row:
                size = tuple(int(v) for v in row["size"].split("x"))
                row["gflop"] = forward_gflop(row["arch"], args.num_classes, size)
        print(markdown(saved))
        return 0

    if args.case:  # child process: one measurement
        model_dir, backend, height, width, runs = args.case
        result = run_case(
            Path(model_dir), backend, (int(height), int(width)), int(runs), args.threads
        )
        print(json.dumps(result))
        return 0

    import numpy as np

    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    work = Path(args.work)
    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    results["command"] = " ".join(["python", "bench/inference.py", *(argv or sys.argv[1:])])
    rows = []
    for arch in args.archs:
        # calibration images only for trained models: random-weight ones use synthetic images
        calib_data = args.calib_data if arch in checkpoints else None
        model_dir = prepare(arch, work, checkpoints.get(arch), args.num_classes, calib_data)
        if args.ort_profile:
            for size_text in args.sizes:
                height, width = (int(v) for v in size_text.split("x"))
                for name in ("model.onnx", "model.int8.onnx"):
                    print(f"\n{arch} {size_text}, {name}, ORT operators:")
                    print(ort_op_profile(model_dir / name, (height, width), args.threads))
            continue
        for size_text in args.sizes:
            height, width = (int(v) for v in size_text.split("x"))
            case = measure(model_dir, args.backends, (height, width), args.runs, args.rounds, args)
            for backend, figures in case.items():
                print(arch, size_text, backend, figures["round_medians_s"], flush=True)
            reference = np.load(case["ort_fp32"]["labels"]) if "ort_fp32" in case else None
            for figures in case.values():
                labels = np.load(figures.pop("labels"))
                if reference is not None:
                    figures["agreement_vs_ort_fp32"] = float((labels == reference).mean())
            gflop = forward_gflop(arch, args.num_classes, (height, width))
            rows.append({"arch": arch, "size": size_text, "gflop": gflop, **case})
    if args.ort_profile:
        return 0
    results["rows"] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    return 0


def measure(
    model_dir: Path,
    backends: list[str],
    size: tuple[int, int],
    runs: int,
    rounds: int,
    args: argparse.Namespace,
) -> dict[str, dict]:
    """Every backend's figures at `size`: `rounds` subprocesses each, interleaved."""
    collected: dict[str, list[dict]] = {}
    for _ in range(rounds):
        for backend in backends:
            command = [sys.executable, __file__, "--threads", str(args.threads), "--case"]
            command += [str(model_dir), backend, str(size[0]), str(size[1]), str(runs)]
            output = subprocess.run(command, capture_output=True, text=True, check=False)
            if output.returncode != 0:
                print(f"{backend}: " + output.stderr.strip().splitlines()[-1], file=sys.stderr)
                continue
            collected.setdefault(backend, []).append(
                json.loads(output.stdout.strip().splitlines()[-1])
            )
    case = {}
    for backend, parts in collected.items():
        times = [t for part in parts for t in part["times_s"]]
        case[backend] = {
            "median_s": statistics.median(times),
            "min_s": min(times),
            "runs": len(times),
            "round_medians_s": [round(part["median_s"], 4) for part in parts],
            "peak_rss_mb": max(part["peak_rss_mb"] for part in parts),
            "labels": parts[-1]["labels"],
        }
        if "gpu_memory_mb" in parts[0]:
            case[backend]["gpu_memory_mb"] = max(part["gpu_memory_mb"] for part in parts)
    return case


def gpu_cell(figures: dict) -> str:
    """`12.3 ms, 99.99%, 850 MB` for the GPU table."""
    agreement = figures.get("agreement_vs_ort_fp32")
    parts = [f"{figures['median_s'] * 1e3:.1f} ms"]
    parts += [f"{agreement:.2%}"] if agreement is not None else []
    parts += [f"{figures.get('gpu_memory_mb', float('nan')):.0f} MB"]
    return ", ".join(parts)


def markdown(results: dict) -> str:
    """The results table in Markdown; ratios of medians, with the ratio of minima (the
    machine's undisturbed speed) in brackets."""
    lines = [
        "| arch | size | torch eager | torch bf16 | ORT fp32 | ORT int8 | ORT fp32 / torch "
        "| int8 / fp32 speed-up | int8 agreement* | ORT int8 per-tensor | peak RSS torch / "
        "ORT fp32 / int8 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:

        def median(backend: str, row: dict = row) -> float | None:
            return row[backend]["median_s"] if backend in row else None

        def seconds(value: float | None) -> str:
            return f"{value:.3f} s" if value is not None else "-"

        def ratio(a: str, b: str, row: dict = row) -> str:
            if a not in row or b not in row:
                return "-"
            medians = row[a]["median_s"] / row[b]["median_s"]
            return f"{medians:.2f}x ({row[a]['min_s'] / row[b]['min_s']:.2f}x)"

        def rss(backend: str, row: dict = row) -> str:
            return f"{row[backend]['peak_rss_mb']:.0f}" if backend in row else "-"

        agreement = row.get("ort_int8", {}).get("agreement_vs_ort_fp32")
        lines.append(
            f"| {row['arch']} | {row['size']} | {seconds(median('torch'))} "
            f"| {seconds(median('torch_bf16'))} | {seconds(median('ort_fp32'))} "
            f"| {seconds(median('ort_int8'))} | {ratio('torch', 'ort_fp32')} "
            f"| {ratio('ort_fp32', 'ort_int8')} "
            f"| {f'{agreement:.1%}' if agreement is not None else '-'} "
            f"| {seconds(median('ort_int8_pt'))} "
            f"| {rss('torch')} / {rss('ort_fp32')} / {rss('ort_int8')} MB |"
        )
    cpu = [b for b in ("torch", "torch_bf16", "ort_fp32") if any(b in r for r in results["rows"])]
    if cpu and all("gflop" in row for row in results["rows"]):
        lines += ["", "Compute rate: forward GFLOP / median latency (GFLOP/s)", ""]
        lines.append("| arch | size | GFLOP | " + " | ".join(cpu) + " |")
        lines.append("|---|---|---|" + "---|" * len(cpu))
        for row in results["rows"]:
            rates = [f"{row['gflop'] / row[b]['median_s']:.0f}" if b in row else "-" for b in cpu]
            lines.append(
                f"| {row['arch']} | {row['size']} | {row['gflop']:.1f} | "
                + " | ".join(rates)
                + " |"
            )
    gpu = [b for b in GPU_BACKENDS if any(b in row for row in results["rows"])]
    if gpu:
        lines += ["", "GPU: median latency, argmax agreement with ORT fp32 on the CPU (if run),"]
        lines += ["device memory held (MB)", ""]
        lines.append("| arch | size | " + " | ".join(gpu) + " |")
        lines.append("|---|---|" + "---|" * len(gpu))
        for row in results["rows"]:
            cells = [gpu_cell(row[b]) if b in row else "-" for b in gpu]
            lines.append(f"| {row['arch']} | {row['size']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
