"""The demo's models: which names a visitor may load, what `zoo.load` gets for each, and the
cache of loaded Segmenters."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import zoo
from demo.errors import visitor_error
from zoo.availability import DEFAULT_MODEL, PACKAGED_MODELS_DIR, cached_hub_models, packaged_models
from zoo.backends import BACKENDS as BACKEND_TABLE
from zoo.errors import ModelFileError, ModelNotAvailableError
from zoo.hubname import is_hub_name
from zoo.model_cache import SegmenterCache
from zoo.registry import MODELS as REGISTRY

MODELS_DIR = PACKAGED_MODELS_DIR
# "auto": the fastest path that passes its accuracy gate (zoo.load's default), then each row
# of the backend table
BACKENDS = ("auto", *BACKEND_TABLE)
PRECISION = "auto"  # precision of every load (`zoo demo --precision`; bf16/fp16 on a GPU)
MODEL_CACHE_SIZE = 3


def set_precision(precision: str) -> None:
    """The precision of every later load (`zoo demo --precision`)."""
    global PRECISION
    PRECISION = precision


def model_source(name: str) -> str | Path:
    """What `zoo.load` gets for a dropdown value: the packaged directory for the built-in
    default, the name itself otherwise (registry id, `hf-hub:org/repo`, local directory)."""
    if name in packaged_models():
        return MODELS_DIR / name
    if name == DEFAULT_MODEL:
        raise ModelNotAvailableError(
            f"{name} (the built-in model) is missing: {MODELS_DIR / name} does not exist. "
            "Reinstall cpg-zoo, or rebuild it with `bash scripts/build_default_model.sh`."
        )
    return name


def _load_for_demo(name: str, backend: str) -> zoo.Segmenter:
    return zoo.load(model_source(name), backend=backend, precision=PRECISION)


MODELS = SegmenterCache(MODEL_CACHE_SIZE, _load_for_demo)


def get_segmenter(name: str, backend: str) -> zoo.Segmenter:
    """The cached Segmenter, or a gr.Error saying why the model cannot be used."""
    if not name:
        raise visitor_error("Choose a model.")
    if backend not in BACKENDS:
        raise visitor_error(f"Unknown backend {backend!r}; use one of {', '.join(BACKENDS)}.")
    if not is_allowed_model(name):
        raise visitor_error(
            f"Unknown model {name!r}: choose one from the list, or type a registry id "
            "(`zoo list`) or 'hf-hub:org/repo'."
        )
    try:
        return MODELS.get(name, backend)
    except ImportError as error:
        raise visitor_error(f"The {backend} backend is not installed here ({error}).") from None
    except (ModelNotAvailableError, ModelFileError, ValueError, OSError) as error:
        message = str(error)
        raise visitor_error(message if message.startswith(name) else f"{name}: {message}") from None


_ALLOWED: set[str] = set()


def allow_models(names: Iterable[str]) -> None:
    """Let visitors load `names` (the dropdown's models and the `--model` one) as well."""
    _ALLOWED.update(names)


def is_allowed_model(name: str) -> bool:
    """Listed models, registry ids and Hub ids: visitors must not open arbitrary server paths."""
    return name in _ALLOWED or name in REGISTRY or is_hub_name(name)


def model_choices(default_model: str) -> list[str]:
    """The dropdown: the models that load now. The default (maybe a `--model` directory)
    first, then the built-in ones and the cached Hub models."""
    return list(dict.fromkeys([default_model, *packaged_models(), *cached_hub_models()]))
