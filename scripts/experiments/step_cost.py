"""Wall-clock cost of one SynthCity training iteration per loss setting, measured interleaved.

Usage: python scripts/experiments/step_cost.py --data-root DIR --out budget.json
           [--rounds 5] [--steps 4] [--settings ce cpg_k3 cpg_k5 cpg_k7]

Each iteration is what the trainer does with `workers=0`: draw and augment a batch of
`batch_size` SynthCity crops, forward LRASPP, the loss (CE, or CE + CPG at a kernel size),
backward and an SGD step. The settings take turns (`steps` iterations each per round, for
`rounds` rounds) so that load from other jobs on a shared machine hits them alike; the median
seconds per iteration of each setting and its ratio to CE are written as JSON. The equal-compute
CE arm trains `round(iterations * ratio(cpg_k3))` iterations.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import torch

from training.losses import SegmentationObjective
from training.recipes import get_recipe
from training.trainer import build_datasets
from zoo.models import build_model

SETTINGS = {
    "ce": dict(cpg_lambda=0.0, kernel_size=3),
    "cpg_k3": dict(cpg_lambda=1.0, kernel_size=3),
    "cpg_k5": dict(cpg_lambda=1.0, kernel_size=5),
    "cpg_k7": dict(cpg_lambda=1.0, kernel_size=7),
}


def measure(data_root: Path, settings: list[str], rounds: int, steps: int) -> dict:
    """Median seconds per training iteration of each setting, interleaved in rounds."""
    recipe = get_recipe("lraspp_mbv3_synthcity_ce")
    train_set, _ = build_datasets(recipe, data_root)
    torch.manual_seed(0)
    model = build_model(recipe.arch, 19, aux_loss=False, pretrained_backbone=False)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    objectives = {name: SegmentationObjective(**SETTINGS[name]) for name in settings}
    times: dict[str, list[float]] = {name: [] for name in settings}
    rng = random.Random(0)
    for round_index in range(rounds + 1):  # round 0 is a warm-up
        for name in settings:
            for _ in range(steps):
                start = time.perf_counter()
                items = [train_set[rng.randrange(len(train_set))] for _ in range(recipe.batch_size)]
                images = torch.stack([image for image, _ in items])
                masks = torch.stack([mask for _, mask in items])
                loss, _ = objectives[name](model(images), masks)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if round_index:
                    times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "seconds_per_iteration": median,
        "ratio_to_ce": {name: median[name] / median["ce"] for name in settings},
        "iterations_per_setting": rounds * steps,
        "threads": torch.get_num_threads(),
        "batch_size": recipe.batch_size,
        "crop_size": list(recipe.crop_size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    if "ce" not in args.settings:
        parser.error("--settings must include ce (the ratios are to CE)")
    torch.set_num_threads(1)
    result = measure(args.data_root, args.settings, args.rounds, args.steps)
    result["iterations"] = get_recipe("lraspp_mbv3_synthcity_ce").iterations
    if "cpg_k3" in result["ratio_to_ce"]:
        result["ce_equal_compute_iterations"] = round(
            result["iterations"] * result["ratio_to_ce"]["cpg_k3"]
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
