"""`zoo.load(name, ...)`: a registry id, `hf-hub:org/repo@rev` or a local model directory ->
a ready `Segmenter`.

The ONNX path never imports torch; the Hub client (`zoo.hub`) is imported only for Hub names.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from zoo.backends import Backend, OnnxBackend, TorchBackend, check_device, warn_fp16_on_cpu
from zoo.config import (
    CONFIG_NAME,
    ONNX_FP16_NAME,
    ONNX_INT8_NAME,
    ONNX_NAME,
    WEIGHTS_NAME,
    ModelConfig,
)
from zoo.errors import HubUnreachableError, ModelNotAvailableError
from zoo.modeldir import interrupted_replacement, verify_files
from zoo.preprocess import MAX_IMAGE_PIXELS
from zoo.registry import MODELS
from zoo.segmenter import AUTO, Segmenter, _Auto

BACKENDS = ("auto", "onnx", "torch")
ONNX_FILES = {"fp32": ONNX_NAME, "int8": ONNX_INT8_NAME, "fp16": ONNX_FP16_NAME}
PRECISIONS = tuple(ONNX_FILES)
HF_HUB_PREFIX = "hf-hub:"
# Model directories shipped inside the package (the demo's built-in model), loadable by name.
PACKAGED_MODELS_DIR = Path(__file__).resolve().parent / "assets" / "models"


def packaged_models() -> list[str]:
    """Names of the model directories shipped in the package (`zoo/assets/models/`)."""
    if not PACKAGED_MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in PACKAGED_MODELS_DIR.iterdir() if (p / CONFIG_NAME).is_file())


def load(
    name: str | os.PathLike[str],
    backend: str = "auto",
    device: str = "auto",
    revision: str | None = None,
    precision: str = "fp32",
    *,
    mode: str = "whole",
    max_side: int | _Auto | None = AUTO,
    batch_size: int = 1,
    providers: list[Any] | None = None,
    num_threads: int | None = None,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
    verify: bool = True,
) -> Segmenter:
    """Load a model for inference.

    name: a registry id (`zoo list`), `"hf-hub:org/repo"` / `"hf-hub:org/repo@revision"`, a
        model shipped in the package (`lraspp_mbv3_synthcity_cpg`, the demo's; works
        offline), or a local model directory (config.json + model.onnx and/or
        model.safetensors).
    backend: "onnx" (ONNX Runtime), "torch" (safetensors weights), or "auto" (ONNX when the
        model has model.onnx, else torch).
    device: "auto" (GPU when usable), "cpu", "cuda" or "cuda:N".
    revision: Hub branch, tag or commit (pin it for reproducible results).
    precision: "fp32", "int8" (model.int8.onnx) or "fp16" (model.fp16.onnx; GPU).
    mode, max_side, batch_size: the `Segmenter`'s defaults (see `zoo.segmenter`).
    providers: explicit ONNX Runtime providers, overriding the device's choice.
    num_threads: ONNX Runtime intra-op threads (default: ONNX Runtime's).
    max_pixels: refuse larger images (default `zoo.preprocess.MAX_IMAGE_PIXELS`, 50 MP;
        None: no limit).
    verify: check the model file against the sha256 that config.json records (once per file
        version in a process); False for files changed on purpose.

    Raises ModelFileError when a model file differs from config.json's record,
    ModelNotAvailableError when the model cannot be obtained (not published yet,
    offline and not cached, missing files), ValueError for bad arguments or unknown ids.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    check_device(device)
    model_dir = resolve_model_dir(name, revision=revision, backend=backend, precision=precision)
    config = _read_config(model_dir)
    chosen = choose_backend(model_dir, backend, precision)
    if verify:
        verify_files(model_dir, [ONNX_FILES[precision] if chosen == "onnx" else WEIGHTS_NAME])
    engine = _build_backend(model_dir, config, chosen, device, precision, providers, num_threads)
    return Segmenter(
        engine,
        config,
        model_dir,
        mode=mode,
        max_side=max_side,
        batch_size=batch_size,
        max_pixels=max_pixels,
        precision=precision,
        source=os.fspath(name),
        revision=hub_commit(model_dir),
    )


def hub_commit(model_dir: Path) -> str | None:
    """The commit sha of a snapshot folder of the Hub cache (`.../snapshots/<sha>`), the exact
    revision a Hub load resolved to; None for other directories."""
    sha = model_dir.name
    is_sha = len(sha) == 40 and all(c in "0123456789abcdef" for c in sha)
    return sha if is_sha and model_dir.parent.name == "snapshots" else None


def resolve_model_dir(
    name: str | os.PathLike[str],
    revision: str | None = None,
    backend: str = "auto",
    precision: str = "fp32",
) -> Path:
    """The local model directory of `name`, downloading from the Hub if needed."""
    text = os.fspath(name)
    if text.startswith(HF_HUB_PREFIX):
        repo_id, _, pinned = text[len(HF_HUB_PREFIX) :].partition("@")
        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise ValueError(f"{text!r}: expected 'hf-hub:org/repo' or 'hf-hub:org/repo@revision'")
        if pinned and revision and pinned != revision:
            raise ValueError(f"{text!r} pins revision {pinned!r} but revision={revision!r}")
        return _download(repo_id, pinned or revision, backend, precision, label=text)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        raise ValueError(
            f"{path} is a file; pass the model directory that holds {CONFIG_NAME} "
            f"and the model files"
        )
    if text in packaged_models():
        return PACKAGED_MODELS_DIR / text
    if text in MODELS:
        return _download(MODELS[text].hub_repo, revision, backend, precision, label=text)
    previous = interrupted_replacement(path)  # an export was killed between its two renames
    if previous is not None:
        return previous
    if os.sep in text or "/" in text or text.startswith((".", "~")):
        raise ModelNotAvailableError(
            f"local model directory {path} does not exist. Pass an existing directory written "
            f"by `zoo export`, a registry id (`zoo list`) or 'hf-hub:org/repo'."
        )
    close = difflib.get_close_matches(text, list(MODELS), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown model {text!r}: not a registry id, not 'hf-hub:org/repo' and not a local "
        f"directory.{hint} Valid ids: {', '.join(sorted(MODELS))}"
    )


def _download(repo_id: str, revision: str | None, backend: str, precision: str, label: str) -> Path:
    try:
        from zoo.hub import download_model
    except ImportError as error:
        raise ModelNotAvailableError(
            f"{label}: cannot download {repo_id} because the Hub client is unavailable "
            f"({error}); download the model directory yourself and pass its path"
        ) from None
    first = "onnx" if backend == "auto" else backend
    try:
        path = Path(download_model(repo_id, revision=revision, backend=first, precision=precision))
    except ModelNotAvailableError as error:
        if backend != "auto" or isinstance(error, HubUnreachableError):
            raise _with_label(error, label, repo_id) from None
        try:  # a torch-only repo still loads with backend="auto"
            path = Path(download_model(repo_id, revision=revision, backend="torch"))
        except ModelNotAvailableError:
            raise _with_label(error, label, repo_id) from None
    if backend == "auto" and not (path / ONNX_FILES[precision]).is_file():
        path = Path(download_model(repo_id, revision=revision, backend="torch"))
    return path


def _with_label(error: ModelNotAvailableError, label: str, repo_id: str) -> ModelNotAvailableError:
    """The hub's error, prefixed with the name the user gave (and a hint for registry ids)."""
    message = str(error).rstrip()
    unreachable = isinstance(error, HubUnreachableError)  # says what to do already
    if label in MODELS and not unreachable and "publish" not in message.lower():
        message = message if message.endswith(".") else message + "."
        message += (
            f" Registry id {label!r} maps to Hub repo {repo_id!r}; it may not be trained and "
            "published yet (see its model card), or pass a local model directory instead."
        )
    labelled = message if message.startswith(label) else f"{label}: {message}"
    return HubUnreachableError(labelled) if unreachable else ModelNotAvailableError(labelled)


def _read_config(model_dir: Path) -> ModelConfig:
    if not (model_dir / CONFIG_NAME).is_file():
        raise ModelNotAvailableError(
            f"{model_dir} is not a model directory: {CONFIG_NAME} is missing. Use a directory "
            "written by `zoo export` (or downloaded from the Hub)."
        )
    return ModelConfig.load(model_dir)


def choose_backend(model_dir: Path, backend: str, precision: str) -> str:
    """Resolve "auto": ONNX when the directory has model.onnx (or the precision's ONNX file),
    else torch when it has model.safetensors."""
    if backend != "auto":
        return backend
    if (model_dir / ONNX_NAME).is_file() or (model_dir / ONNX_FILES[precision]).is_file():
        return "onnx"
    if (model_dir / WEIGHTS_NAME).is_file():
        return "torch"
    raise ModelNotAvailableError(
        f"{model_dir} has neither {ONNX_NAME} nor {WEIGHTS_NAME}; present: "
        f"{_listing(model_dir)}. Re-export the model or download it again."
    )


def _build_backend(
    model_dir: Path,
    config: ModelConfig,
    backend: str,
    device: str,
    precision: str,
    providers: list[Any] | None,
    num_threads: int | None,
) -> Backend:
    if backend == "onnx":
        path = model_dir / ONNX_FILES[precision]
        if not path.is_file():
            have = [p for p, f in ONNX_FILES.items() if (model_dir / f).is_file()]
            advice = f"use precision={have[0]!r} or " if have else ""
            raise ModelNotAvailableError(
                f"{path} not found: this model has no {precision} ONNX file (precisions "
                f"available: {', '.join(have) or 'none'}; files present: {_listing(model_dir)}). "
                f"{advice.capitalize()}export the model with that precision."
            )
        engine: Backend = OnnxBackend(path, device, providers=providers, num_threads=num_threads)
        if precision == "fp16":
            warn_fp16_on_cpu(engine)
        return engine
    path = model_dir / WEIGHTS_NAME
    if not path.is_file():
        raise ModelNotAvailableError(
            f"{path} not found: backend='torch' needs the safetensors weights (files present: "
            f"{_listing(model_dir)}). Use backend='onnx' or download with the torch files."
        )
    return TorchBackend(path, config, device, precision)


def _listing(model_dir: Path) -> str:
    names = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else []
    return ", ".join(names) or "(nothing)"
