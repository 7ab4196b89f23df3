"""Read a trainer checkpoint (or safetensors file, or model directory) into a model to export.

Accepted sources:

- a `torch.save` file holding a dict with `"model"` (state dict, aux-head keys allowed) and
  `"config"` (`ModelConfig.to_dict()`); loaded with `weights_only=True`, no arbitrary pickle;
- a `model.safetensors` written by `save_weights` (config JSON in its metadata);
- a model directory holding `model.safetensors` (and `config.json`).

Every failure names the file and the problem.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save
from torch import nn

from training.checkpoints import read_checkpoint
from zoo.archs import ARCHITECTURES
from zoo.config import ModelConfig
from zoo.fileio import write_bytes_atomic
from zoo.modelfiles import CONFIG_NAME, WEIGHTS_NAME
from zoo.models import build_model

METADATA_CONFIG_KEY = "config"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match its config."""


@dataclass
class LoadedCheckpoint:
    """A checkpoint's config and its (aux-free) state dict."""

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    path: Path
    dropped_keys: list[str]


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Read `path` (trainer checkpoint, `.safetensors` or model directory)."""
    path = Path(path)
    if path.is_dir():
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise CheckpointError(f"{path}: model directory without {WEIGHTS_NAME}")
        loaded = _load_safetensors(weights)
        if (path / CONFIG_NAME).is_file():
            loaded.config = ModelConfig.load(path)
        return loaded
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    return _load_torch(path)


def _load_torch(path: Path) -> LoadedCheckpoint:
    try:
        data = read_checkpoint(path)
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    config = _config_from_dict(data["config"], path)
    return _checked(config, data["model"], path)


def _load_safetensors(path: Path) -> LoadedCheckpoint:
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
        state_dict = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file: {error}") from None
    if METADATA_CONFIG_KEY not in metadata:
        raise CheckpointError(f"{path}: safetensors metadata has no '{METADATA_CONFIG_KEY}' JSON")
    try:
        config_dict = json.loads(metadata[METADATA_CONFIG_KEY])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: config metadata is not valid JSON: {error}") from None
    return _checked(_config_from_dict(config_dict, path), state_dict, path)


def _config_from_dict(data: Any, path: Path) -> ModelConfig:
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: config must be a JSON object")
    try:
        return ModelConfig.from_dict(data, source=f"{path} (config)")
    except (TypeError, ValueError) as error:
        raise CheckpointError(str(error)) from None


def _checked(config: ModelConfig, state_dict: Any, path: Path) -> LoadedCheckpoint:
    if not isinstance(state_dict, dict) or not all(
        isinstance(value, torch.Tensor) for value in state_dict.values()
    ):
        raise CheckpointError(f"{path}: 'model' must be a state dict of tensors")
    if any(key.startswith("module.") for key in state_dict):
        raise CheckpointError(
            f"{path}: state dict keys start with 'module.' (a DDP wrapper's); save "
            "model.module.state_dict() instead"
        )
    # The arch's aux-head weights (training only); an unknown arch fails in build_for_export.
    arch = ARCHITECTURES.get(config.arch)
    aux_prefixes = arch.aux_prefixes if arch is not None else ()
    kept = {key: value for key, value in state_dict.items() if not key.startswith(aux_prefixes)}
    dropped = sorted(set(state_dict) - set(kept))
    return LoadedCheckpoint(config, kept, path, dropped)


def build_for_export(checkpoint: LoadedCheckpoint) -> nn.Module:
    """The eval-mode network (no aux head) with the checkpoint's weights loaded strictly."""
    config = checkpoint.config
    try:
        model = build_model(config.arch, config.num_classes, aux_loss=False)
    except ValueError as error:
        raise CheckpointError(f"{checkpoint.path}: {error}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(checkpoint.state_dict))
    unexpected = sorted(set(checkpoint.state_dict) - set(expected))
    mismatched = [
        f"{key} {tuple(value.shape)} vs expected {tuple(expected[key].shape)}"
        for key, value in checkpoint.state_dict.items()
        if key in expected and value.shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"{checkpoint.path}: state dict does not fit {config.arch} with "
            f"{config.num_classes} classes (is it for another arch or class count?): "
            + "; ".join(
                part
                for part in (
                    _few("missing", missing),
                    _few("unexpected", unexpected),
                    _few("shape mismatch", mismatched),
                )
                if part
            )
        )
    model.load_state_dict(checkpoint.state_dict, strict=True)
    return model.eval()


def _bits(tensor: torch.Tensor) -> bytes:
    return tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _few(label: str, items: list[str], limit: int = 5) -> str:
    if not items:
        return ""
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"{len(items)} {label}: {', '.join(items[:limit])}{more}"


def save_weights(model: nn.Module, config: ModelConfig, path: str | Path) -> dict[str, str]:
    """Write `model.safetensors` with the config in its metadata; return the metadata.

    Byte-reproducible: the same weights and config give the same bytes (safetensors writes
    its metadata in hash-map order, so the header is rewritten with sorted metadata).
    """
    metadata = {
        "format": "pt",
        "arch": config.arch,
        "num_classes": str(config.num_classes),
        "model_id": config.model_id,
        "source_commit": config.source_commit,
        METADATA_CONFIG_KEY: json.dumps(config.to_dict(), sort_keys=True),
    }
    tensors = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    write_bytes_atomic(path, _sorted_metadata(save(tensors, metadata=metadata)))
    return metadata


def _sorted_metadata(data: bytes) -> bytes:
    """safetensors bytes with the header's `__metadata__` in key order (tensor entries, their
    order and the data unchanged: offsets count from the end of the header)."""
    length = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + length])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the 8-byte alignment safetensors itself pads to
    return struct.pack("<Q", len(text)) + text + data[8 + length :]


def verify_weights(model: nn.Module, config: ModelConfig, path: str | Path) -> None:
    """Reload `path`: bit-identical tensors, config metadata equal, strict load into a new model."""
    path = Path(path)
    reloaded = _load_safetensors(path)
    original = model.state_dict()
    if reloaded.config.to_dict() != config.to_dict():
        raise CheckpointError(f"{path}: config metadata differs from the exported config")
    if set(reloaded.state_dict) != set(original):
        raise CheckpointError(f"{path}: tensor names differ from the model's state dict")
    for key, value in original.items():
        other = reloaded.state_dict[key]
        if other.dtype != value.dtype or other.shape != value.shape or _bits(other) != _bits(value):
            raise CheckpointError(f"{path}: tensor {key} is not bit-identical after reload")
    build_for_export(reloaded)  # strict=True load into a fresh network
