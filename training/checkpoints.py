"""Training checkpoints: what they hold, writing them atomically, reading them safely.

A checkpoint holds plain tensors and builtins only (model and optimizer state, the recipe in
`config`, every rank's RNG states), so it loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import io
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from training.recipes import Recipe
from zoo.datasets import DatasetInfo

__all__ = [
    "CHECKPOINT_KEYS",
    "all_rng_states",
    "checkpoint_config",
    "load_checkpoint",
    "model_state_dict",
    "read_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

CHECKPOINT_KEYS = (
    "model",
    "config",
    "optimizer",
    "scheduler",
    "scaler",
    "iteration",
    "rng",
    "best_miou",
)

_EXPECTED = "expected a checkpoint that `zoo train` writes (RUN_DIR/last.pt or best.pt)"
_LISTED_KEYS = 5


def _not_torch_save(path: Path) -> str | None:
    """What `path` is when its bytes cannot be a `torch.save` file (a zip archive, or a
    legacy pickle); None when they may be one."""
    from zoo.modelfiles import FILE_KINDS

    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(4)
    if size == 0:
        return "an empty file (0 bytes)"
    if head.startswith(b"PK"):
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
            if any(name.endswith("data.pkl") for name in names):
                return None
            return f"a zip archive of {len(names)} file(s) without data.pkl (not torch.save's)"
        return (
            f"an incomplete zip archive of {size} bytes: a checkpoint cut short (an interrupted "
            "copy or download, or a full disk?)"
        )
    if head.startswith(b"\x80"):  # a legacy (pre-zip) torch.save pickle
        return None
    kind = f"a {size}-byte file that is no torch.save archive (no zip header)"
    if path.name in FILE_KINDS:
        kind += (
            f"; {path.name} is a model-directory file: zoo eval and init= take the directory "
            f"{path.parent}"
        )
    return kind


def model_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Plain state dict (no DDP `module.` prefix, CPU tensors)."""
    module = model.module if hasattr(model, "module") else model
    return {
        k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
        for k, v in module.state_dict().items()
    }


def rng_state() -> dict[str, Any]:
    """RNG states as tensors and builtins (numpy's state converted: no numpy objects)."""
    import numpy as np

    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [
            str(name),
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def all_rng_states() -> list[dict[str, Any]]:
    """Every rank's RNG states, in rank order (a collective: all ranks must call it)."""
    import torch.distributed as dist

    state = rng_state()
    if not (dist.is_available() and dist.is_initialized()):
        return [state]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `rng_state`."""
    import numpy as np

    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_config(
    recipe: Recipe, commit: str | None = None, info: DatasetInfo | None = None
) -> dict[str, Any]:
    """The checkpoint's `config`: `zoo.config.ModelConfig(...).to_dict()` for this recipe, with
    the classes of `info` (a user's dataset) or of the recipe's dataset row."""
    from training.evaluate import git_commit
    from zoo.config import ModelConfig
    from zoo.datasets import get_dataset_info

    info = info or get_dataset_info(recipe.dataset)
    return ModelConfig.for_info(
        recipe.arch,
        info,
        input_size=list(recipe.crop_size),
        model_id=recipe.name,
        loss={
            "name": recipe.loss,
            "cpg_lambda": recipe.cpg_lambda,
            "kernel_size": recipe.cpg_kernel_size,
            "ignore_mode": recipe.cpg_ignore_mode,
        },
        recipe=recipe.to_dict(),
        source_commit=git_commit() if commit is None else commit,
    ).to_dict()


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """`torch.save` to a temp file in the same folder, fsync, then rename over `path`."""
    from zoo.fileio import write_bytes_atomic

    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def read_checkpoint(
    path: str | Path, required: tuple[str, ...] = ("model", "config")
) -> dict[str, Any]:
    """`torch.load(path, weights_only=True)` of a dict holding `required`; ValueError naming
    the file (what it is, and what was expected) if it is missing, not a torch.save file,
    damaged, holds more than tensors and builtins, or lacks a key. The one checkpoint reader
    of training, evaluation, fine-tuning and export."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} not found")
    if (kind := _not_torch_save(path)) is not None:
        raise ValueError(f"{path} is not a training checkpoint: it is {kind}; {_EXPECTED}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(
            f"checkpoint {path} holds objects other than tensors and builtins "
            "(not loadable with weights_only=True); it was not written by zoo train"
        ) from None
    except Exception as error:  # damaged bytes fail in many ways inside the unpickler
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"checkpoint {path} is damaged: torch.load cannot read it ({reason}); {_EXPECTED}"
        ) from None
    if not isinstance(checkpoint, dict) or any(key not in checkpoint for key in required):
        keys = list(map(str, checkpoint)) if isinstance(checkpoint, dict) else []
        more = f" and {len(keys) - _LISTED_KEYS} more" if len(keys) > _LISTED_KEYS else ""
        found = (
            f"its keys: {', '.join(keys[:_LISTED_KEYS])}{more}"
            if isinstance(checkpoint, dict)
            else f"it holds a {type(checkpoint).__name__}"
        )
        raise ValueError(
            f"checkpoint {path} lacks the keys {', '.join(required)} ({found}); {_EXPECTED}"
        )
    if not isinstance(checkpoint["config"], dict):
        raise ValueError(f"checkpoint {path}: 'config' must be a dict (ModelConfig.to_dict())")
    return checkpoint


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by `zoo train` (`read_checkpoint` plus its iteration and recipe)."""
    checkpoint = read_checkpoint(path, ("model", "config", "iteration"))
    if "recipe" not in checkpoint["config"]:
        raise ValueError(f"checkpoint {path} has no config.recipe: it was not written by zoo train")
    return checkpoint
