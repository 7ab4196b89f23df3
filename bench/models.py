"""Parameter count and CPU forward latency of the networks of `zoo.archs` (issue 3).

Usage: python bench/models.py [--height 512 --width 1024 --threads 2 --runs 5 --classes 19]
Prints a markdown table; random weights (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from zoo.archs import ARCHITECTURES
from zoo.models import build_model


def time_forward(
    model: torch.nn.Module, image: torch.Tensor, runs: int, warmup: int
) -> list[float]:
    """Wall-clock seconds of `runs` eval forwards after `warmup` untimed ones."""
    times = []
    with torch.inference_mode():
        for index in range(warmup + runs):
            start = time.perf_counter()
            model(image)
            if index >= warmup:
                times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--archs", nargs="+", default=list(ARCHITECTURES), choices=ARCHITECTURES)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image = torch.randn(1, 3, args.height, args.width)
    print(f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or 'cpu'}")
    print(f"| arch | params (M) | forward 1x3x{args.height}x{args.width} median (s) | min (s) |")
    print("|---|---|---|---|")
    for arch in args.archs:
        model = build_model(arch, args.classes).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        times = time_forward(model, image, args.runs, args.warmup)
        print(f"| {arch} | {params:.2f} | {statistics.median(times):.3f} | {min(times):.3f} |")


if __name__ == "__main__":
    main()
