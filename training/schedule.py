"""The learning-rate schedule of a recipe: linear warm-up, then poly decay, per iteration."""

from __future__ import annotations

from training.recipes import Recipe


def poly_warmup_factor(iteration: int, recipe: Recipe) -> float:
    """LR multiplier at `iteration`: linear warm-up from `warmup_ratio`, then poly decay
    `(1 - it/iterations) ** poly_power` from `lr` down to `min_lr`."""
    progress = min(iteration, recipe.iterations) / recipe.iterations
    poly = (1.0 - progress) ** recipe.poly_power
    factor = (recipe.min_lr + (recipe.lr - recipe.min_lr) * poly) / recipe.lr
    if iteration < recipe.warmup_iters:
        ratio = recipe.warmup_ratio
        factor *= ratio + (1.0 - ratio) * iteration / recipe.warmup_iters
    return factor
