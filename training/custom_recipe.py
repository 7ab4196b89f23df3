"""The recipe for a user's own dataset (`zoo train --arch A --data-root DATA`): crop, batch,
schedule and workers derived from the data and the machine, on top of the arch's and loss's
values in `training.recipes`."""

from __future__ import annotations

import os
from typing import Any

from training.recipes import ARCH_TWEAKS, LOSS_SETTINGS, Recipe
from zoo.archs import ARCHITECTURES
from zoo.datasets import CUSTOM
from zoo.lookup import lookup
from zoo.registry import LOSSES

# A user's own dataset (`zoo train --arch A --data-root DATA`): defaults for small datasets.
CUSTOM_EPOCHS = 50  # iterations = this many passes over the training images, clamped below
CUSTOM_ITERATIONS = (200, 40_000)
CUSTOM_BATCH = 8  # at most: a training set of fewer images trains with batches of all of them
CUSTOM_MAX_CROP = 512
CUSTOM_MAX_WORKERS = 4


def custom_workers() -> int:
    """DataLoader workers for a user's dataset: `CUSTOM_MAX_WORKERS`, at most one per CPU this
    process may run on."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(CUSTOM_MAX_WORKERS, cpus))


def custom_batch(train_images: int) -> int:
    """The batch for a user's dataset: `CUSTOM_BATCH`, or all its training images if fewer."""
    return max(1, min(CUSTOM_BATCH, train_images))


def custom_crop(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """Training crop from the images' (height, width): the most common size, at most 512 a
    side, rounded down to a multiple of 16 (at least 32)."""
    height, width = max(set(sizes), key=sizes.count)
    return tuple(  # type: ignore[return-value]
        max(32, min(CUSTOM_MAX_CROP, side) // 16 * 16) for side in (height, width)
    )


def custom_recipe(
    arch: str,
    loss: str,
    dataset_name: str,
    train_images: int,
    sizes: list[tuple[int, int]],
    iterations: int | None = None,
) -> Recipe:
    """The recipe for `arch` on a user's dataset of `train_images` images of `sizes`:
    crop from the data, batch at most the training set (`custom_batch`), iterations from its
    size (`CUSTOM_EPOCHS` passes) unless given, warm-up, evaluation, checkpoint and log
    intervals from the iterations, workers from the CPUs (`custom_workers`). Override any
    field with key=value."""
    lookup(ARCHITECTURES, arch, "arch")
    lookup(LOSSES, loss, "loss")
    batch = custom_batch(train_images)
    if iterations is None:
        iterations = -(-CUSTOM_EPOCHS * train_images // batch)
        iterations = min(max(iterations, CUSTOM_ITERATIONS[0]), CUSTOM_ITERATIONS[1])
    every = max(1, iterations // 5)
    values: dict[str, Any] = dict(
        crop_size=custom_crop(sizes), batch_size=batch, iterations=iterations,
        lr=0.01, warmup_iters=min(500, iterations // 10), eval_interval=every,
        checkpoint_interval=every, log_interval=min(50, max(1, iterations // 50)),
        eval_mode="whole", workers=custom_workers(),
    )  # fmt: skip
    values.update(ARCH_TWEAKS[arch])
    values.update(LOSS_SETTINGS[loss])
    name = f"{arch}_{dataset_name}_{loss}"
    recipe = Recipe(name=name, arch=arch, dataset=CUSTOM, loss=loss, **values)
    recipe.validate()
    return recipe
