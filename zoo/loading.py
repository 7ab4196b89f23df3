"""`zoo.load(name, ...)`: a registry id, `hf-hub:org/repo@rev` or a local model directory ->
a ready `Segmenter`.

The ONNX path never imports torch; the Hub client (`zoo.hub`) is imported only for Hub names.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from zoo.availability import PACKAGED_MODELS_DIR, hub_snapshot, list_models, packaged_models
from zoo.backends import BACKEND_CHOICES, BACKENDS, PRECISION_CHOICES, Backend, LoadRequest
from zoo.config import ModelConfig
from zoo.devices import check_device
from zoo.errors import HubUnreachableError, ModelNotAvailableError
from zoo.hubname import is_hub_name, parse_hub_name
from zoo.modeldir import interrupted_replacement, verify_files
from zoo.modelfiles import CONFIG_NAME, FILE_KINDS
from zoo.predict_options import AUTO, Auto
from zoo.preprocess import MAX_IMAGE_PIXELS
from zoo.registry import MODELS
from zoo.segmenter import Segmenter
from zoo.selection import choose

ONNX_FILES = BACKENDS["onnx"].files


def load(
    name: str | os.PathLike[str],
    backend: str = "auto",
    device: str = "auto",
    revision: str | None = None,
    precision: str = "auto",
    *,
    mode: str = "whole",
    max_side: int | Auto | None = AUTO,
    batch_size: int = 1,
    providers: list[Any] | None = None,
    num_threads: int | None = None,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
    verify: bool = True,
    min_agreement: float | None = None,
) -> Segmenter:
    """Load a model for inference.

    name: a registry id (`zoo list`), `"hf-hub:org/repo"` / `"hf-hub:org/repo@revision"`, a
        model shipped in the package (`lraspp_mbv3_synthcity_cpg`, the demo's; works
        offline), or a local model directory (config.json + model.onnx and/or
        model.safetensors).
    backend: "onnx" (ONNX Runtime), "openvino" (OpenVINO, CPU), "torch" (safetensors
        weights), or "auto": with precision "auto", on a CPU the fastest installed path whose
        accuracy gate is met (`zoo.selection`; `Segmenter.selection` says which and why), on
        a GPU ONNX Runtime fp32; torch when the model has no ONNX file.
    device: "auto" (GPU when usable), "cpu", "cuda" or "cuda:N".
    revision: Hub branch, tag or commit (pin it for reproducible results).
    precision: "auto", "fp32", "bf16" (OpenVINO on CPUs reporting BF16; model.onnx), "int8"
        (model.int8.onnx) or "fp16" (model.fp16.onnx; GPU). "auto" with an explicit backend
        is fp32.
    mode, max_side, batch_size: the `Segmenter`'s defaults (see `zoo.segmenter`).
    providers: explicit ONNX Runtime providers, overriding the device's choice.
    num_threads: ONNX Runtime intra-op threads (default: ONNX Runtime's).
    max_pixels: refuse larger images (default `zoo.preprocess.MAX_IMAGE_PIXELS`, 50 MP;
        None: no limit).
    verify: check the model file against the sha256 that config.json records (once per file
        version in a process); False for files changed on purpose.
    min_agreement: the argmax agreement with fp32 a reduced precision must have recorded in
        eval.json (default `zoo.selection.GATES`: bf16 99.5%, int8 98%); lower it to use a
        path below its gate.

    Raises ModelFileError when a model file differs from config.json's record,
    ModelNotAvailableError when the model cannot be obtained (not published yet,
    offline and not cached, missing files), ValueError for bad arguments or unknown ids.
    """
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKEND_CHOICES)}")
    if precision not in PRECISION_CHOICES:
        raise ValueError(
            f"unknown precision {precision!r}; use one of {', '.join(PRECISION_CHOICES)}"
        )
    check_device(device)
    wanted = "fp32" if precision in ("auto", "bf16") else precision  # the Hub files to fetch
    model_dir = resolve_model_dir(name, revision=revision, backend=backend, precision=wanted)
    config = _read_config(model_dir)
    choice = choose(model_dir, backend, precision, device, min_agreement)
    if verify:
        verify_files(model_dir, [BACKENDS[choice.backend].files[choice.precision]])
    engine = _build_backend(
        model_dir, config, choice.backend, device, choice.precision, providers, num_threads
    )
    return Segmenter(
        engine,
        config,
        model_dir,
        mode=mode,
        max_side=max_side,
        batch_size=batch_size,
        max_pixels=max_pixels,
        precision=choice.precision,
        source=os.fspath(name),
        revision=hub_commit(model_dir),
        selection=str(choice),
    )


def hub_commit(model_dir: Path) -> str | None:
    """The commit sha of a snapshot folder of the Hub cache (`.../snapshots/<sha>`), the exact
    revision a Hub load resolved to; None for other directories."""
    snapshot = hub_snapshot(model_dir)
    return snapshot[1] if snapshot else None


def resolve_model_dir(
    name: str | os.PathLike[str],
    revision: str | None = None,
    backend: str = "auto",
    precision: str = "fp32",
) -> Path:
    """The local model directory of `name`, downloading from the Hub if needed."""
    text = os.fspath(name)
    if is_hub_name(text):
        repo_id, pinned = parse_hub_name(text, revision)
        return _download(repo_id, pinned, backend, precision, label=text)
    path = Path(text).expanduser()
    local = path.is_dir() or (not path.exists() and text in packaged_models())
    if local and revision is not None:
        raise ValueError(
            f"revision={revision!r} applies to Hub models, and {text!r} is a local model "
            "(a directory or a built-in model): load it without a revision"
        )
    if path.is_dir():
        return path
    if path.is_file():
        if path.name in FILE_KINDS:
            hint = f": it is a model-directory file; pass its directory {path.parent}"
        elif path.suffix.lower() in (".pt", ".pth"):
            hint = (
                ", perhaps a training checkpoint: export it with "
                f"`zoo export {path} --out MODEL_DIR` and load MODEL_DIR"
            )
        else:
            hint = f"; pass the model directory that holds {CONFIG_NAME} and the model files"
        raise ValueError(f"{path} is a file, not a model directory{hint}")
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
    names = list_models()  # the built-in models and the registry ids
    close = difflib.get_close_matches(text, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown model {text!r}: not a built-in model, not a registry id, not "
        f"'hf-hub:org/repo' and not a local directory.{hint} Valid names: {', '.join(names)}"
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


def _build_backend(
    model_dir: Path,
    config: ModelConfig,
    backend: str,
    device: str,
    precision: str,
    providers: list[Any] | None,
    num_threads: int | None,
) -> Backend:
    row = BACKENDS[backend]
    path = model_dir / row.files[precision]
    if not path.is_file():
        have = [p for p, f in row.files.items() if (model_dir / f).is_file()]
        others = [n for n, r in BACKENDS.items() if (model_dir / r.files.get("fp32", "")).is_file()]
        advice = f"Use precision={have[0]!r}, or export" if have else "Export"
        advice = advice if have or not others else f"Use backend={others[0]!r}, or export"
        raise ModelNotAvailableError(
            f"{path} not found: backend={backend!r} with precision={precision!r} needs it "
            f"(precisions available: {', '.join(have) or 'none'}; files present: "
            f"{_listing(model_dir)}). {advice} the model with that precision."
        )
    return row.loader(LoadRequest(path, config, device, precision, providers, num_threads))


def _listing(model_dir: Path) -> str:
    names = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else []
    return ", ".join(names) or "(nothing)"
