"""Training compute of the 18 zoo recipes (or any): FLOPs, and estimated A100 GPU-hours.

Usage: python bench/train_cost.py [--recipes NAME ...]
       python bench/train_cost.py --cpu-check [RECIPE ...]   # check the method on this CPU

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix
products; training = 3x the forward) for one training sample at the recipe's crop size, on
the meta device (shapes only, nothing is computed), times the recipe's batch and iterations.
The CPG term adds no convolution or matmul FLOPs; its cost is time (bench/loss.py).

The GPU-hours divide those FLOPs by the rate that the training of a similar classifier
sustains on one A100: NVIDIA's published PyTorch training throughput on one A100 80GB with
mixed precision (DeepLearningExamples, pytorch-21.03 container; see REFERENCES), times that
classifier's training FLOPs per 224x224 image, counted here the same way. They cover the
training steps only: evaluation, data loading, the CPG term and multi-GPU scaling come on
top. `--cpu-check` applies the same method on this CPU, where both sides can be timed.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.flops import forward_flops
from training.losses import SegmentationObjective
from training.recipes import Recipe, get_recipe, list_recipes
from zoo.archs import get_architecture
from zoo.datasets import DATASETS
from zoo.lookup import lookup
from zoo.models import build_model


# External references (not measured here): NVIDIA DeepLearningExamples, PyTorch ConvNets,
# training throughput on 1x A100 80GB, mixed precision, pytorch-21.03 NGC container. Each arch
# names the classifier whose layers it resembles (`Architecture.flops_reference`): DeepLabv3 has
# a ResNet-50 backbone, HRNetV2 is dense 3x3 convolutions like it, MobileNetV3 is inverted
# residuals with depthwise convolutions and squeeze-excite like EfficientNet-B0 (which sustains
# ~10x fewer FLOP/s).
@dataclass(frozen=True)
class Reference:
    classifier: str  # torchvision model name
    images_per_second: float

    def describe(self) -> str:
        return f"{self.classifier} {self.images_per_second:g} img/s"


REFERENCES: dict[str, Reference] = {
    reference.classifier: reference
    for reference in (
        Reference("resnet50", 2470.0),  # ResNet50 v1.5 README
        Reference("efficientnet_b0", 2489.0),  # EfficientNet README
    )
}


def reference_of(arch: str) -> Reference:
    """The reference classifier that `arch`'s row pairs it with."""
    return lookup(REFERENCES, get_architecture(arch).flops_reference, "flops reference")


def training_flops(model: torch.nn.Module, height: int, width: int) -> int:
    """Forward + backward FLOPs of one training sample: 3x the train-mode forward's.

    The backward of a convolution or matmul costs twice its forward (gradients of the input
    and of the weight). It is not counted directly because `FlopCounterMode` ignores `groups`
    in `convolution_backward` (torch 2.14: a 64-channel depthwise 3x3 backward is counted 65x
    its forward), which would inflate MobileNetV3 tenfold. The forward runs on a batch of 2
    (train-mode BatchNorm after global pooling needs more than one sample), halved.
    """
    return 3 * forward_flops(model.train(), 2, height, width) // 2


def classifier_sample_flops(reference: Reference) -> int:
    """Training FLOPs of one 224x224 image of the reference classifier."""
    with torch.device("meta"):
        model = getattr(torchvision.models, reference.classifier)()
    return training_flops(model, 224, 224)


def recipe_sample_flops(recipe: Recipe) -> int:
    """Training FLOPs of one crop of `recipe`'s network (with its aux head, if any)."""
    with torch.device("meta"):
        model = build_model(
            recipe.arch, DATASETS[recipe.dataset].num_classes, aux_loss=recipe.aux_loss
        )
    return training_flops(model, *recipe.crop_size)


@functools.cache
def reference_flops_per_second(reference: Reference) -> float:
    """Sustained FLOP/s implied by a reference classifier's published training throughput."""
    return classifier_sample_flops(reference) * reference.images_per_second


def recipe_cost(recipe: Recipe) -> dict[str, float]:
    """FLOPs per sample / iteration / run and the estimated A100 GPU-hours of `recipe`."""
    per_sample = recipe_sample_flops(recipe)
    per_run = per_sample * recipe.batch_size * recipe.iterations
    rate = reference_flops_per_second(reference_of(recipe.arch))
    return {
        "sample_tflops": per_sample / 1e12,
        "iteration_tflops": per_sample * recipe.batch_size / 1e12,
        "run_pflops": per_run / 1e15,
        "reference_tflops_per_second": rate / 1e12,
        "gpu_hours": per_run / rate / 3600,
    }


def seconds_per_step(
    model: torch.nn.Module, batch: int, height: int, width: int, num_classes: int, steps: int
) -> float:
    """Median wall-clock seconds of one SGD training step (forward, CE, backward, update)."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    image = torch.randn(batch, 3, height, width)
    target = torch.randint(0, num_classes, (batch, height, width))
    objective = SegmentationObjective()  # the trainer's CE (+ 0.4 aux CE)
    times = []
    for index in range(steps + 1):  # the first step is a warm-up
        start = time.perf_counter()
        outputs = model(image)
        if isinstance(outputs, dict):  # segmentation: {"out", optional "aux"}
            loss, _ = objective(outputs, target)
        else:  # classifier
            loss = F.cross_entropy(outputs, target[:, 0, 0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if index:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_check(recipe_names: list[str], steps: int, reference_batch: int) -> None:
    """Check the pairing on this CPU: predicted vs measured seconds per training iteration.

    The prediction uses the reference classifier's training rate measured here (its FLOPs
    per second at 224x224), exactly as the GPU table uses the published A100 rate.
    """
    rates: dict[str, float] = {}
    print("| recipe | reference | reference FLOP/s here | predicted s/iter | measured s/iter "
          "| measured / predicted |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name in recipe_names:
        recipe = get_recipe(name)
        reference = reference_of(recipe.arch)
        if reference.classifier not in rates:
            classifier = getattr(torchvision.models, reference.classifier)()
            step = seconds_per_step(classifier, reference_batch, 224, 224, 1000, steps)
            rates[reference.classifier] = (
                classifier_sample_flops(reference) * reference_batch / step
            )
        rate = rates[reference.classifier]
        num_classes = DATASETS[recipe.dataset].num_classes
        height, width = recipe.crop_size
        predicted = recipe_sample_flops(recipe) * recipe.batch_size / rate
        model = build_model(recipe.arch, num_classes, aux_loss=recipe.aux_loss)
        measured = seconds_per_step(model, recipe.batch_size, height, width, num_classes, steps)
        print(
            f"| `{name}` | {reference.classifier} | {rate / 1e9:.1f} GFLOP/s | {predicted:.2f} "
            f"| {measured:.2f} | {measured / predicted:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="*", default=list_recipes(include_synthcity=False))
    parser.add_argument(
        "--cpu-check",
        nargs="*",
        metavar="RECIPE",
        help="instead: time real training steps of these recipes (e.g. the SynthCity ones) "
        "and the reference classifiers on this CPU, and compare with the prediction",
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--reference-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.cpu_check is not None:
        names = args.cpu_check or [n for n in list_recipes() if n.endswith("synthcity_ce")]
        cpu_check(names, args.steps, args.reference_batch)
        return
    print(
        "| recipe | crop | batch x iters | TFLOP / sample | TFLOP / iteration | PFLOP / run "
        "| reference (A100, AMP) | sustained TFLOP/s | A100 GPU-hours (training steps) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.recipes:
        recipe = get_recipe(name)
        cost = recipe_cost(recipe)
        height, width = recipe.crop_size
        print(
            f"| `{name}` | {height}x{width} | {recipe.batch_size} x {recipe.iterations:,} "
            f"| {cost['sample_tflops']:.3f} | {cost['iteration_tflops']:.2f} "
            f"| {cost['run_pflops']:,.0f} | {reference_of(recipe.arch).describe()} "
            f"| {cost['reference_tflops_per_second']:.1f} | {cost['gpu_hours']:.1f} |"
        )


if __name__ == "__main__":
    main()
