"""Which models exist and which load now: built-in, registry (Hub) and locally cached ones.

Answers offline and without delay: nothing here touches the network. The built-in models are
directories shipped in the package (`zoo/assets/models/`); Hub models count as available
when their `main` revision is in the local Hub cache with a runnable file. Whether a registry
id is published on the Hub cannot be checked offline: `HUB_PUBLISHED` records the ids whose
weights were pushed (none yet; their cards say "not trained yet"), the others are listed as
"not published yet". With `CPG_ZOO_HUB_NAMESPACE` set, the listing cannot know what that
organisation published and says "not cached (not checked offline)" instead.

A leaf of the runtime: imports the registry and config only (no loading, no Hub client at
import).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from zoo.fileio import read_json_object
from zoo.modelfiles import CONFIG_NAME, ONNX_NAME, WEIGHTS_NAME
from zoo.registry import DEFAULT_HUB_NAMESPACE, MODELS, hub_namespace

# Model directories shipped inside the package, loadable offline by name.
PACKAGED_MODELS_DIR = Path(__file__).resolve().parent / "assets" / "models"
# The model `zoo predict` and the demo use when none is named: the built-in SynthCity model.
DEFAULT_MODEL = "lraspp_mbv3_synthcity_cpg"
# Registry ids whose weights are published on the Hub (checked by hand when pushing: offline,
# the zoo cannot ask). Empty until the first zoo model is trained and pushed.
HUB_PUBLISHED: frozenset[str] = frozenset()

BUILT_IN = "built-in"
HUB = "Hub"
LOCAL_CACHE = "local cache"
IN_CACHE = "in the local Hub cache"


@dataclass(frozen=True)
class ModelEntry:
    """One row of `zoo list`: a model name `zoo.load` accepts, where it comes from and
    whether it loads now."""

    name: str
    source: str  # BUILT_IN, HUB (a registry id) or LOCAL_CACHE (another cached Hub repo)
    available: bool  # loads now, offline
    note: str  # why (not): "ships with the package", "not published yet (org/repo)", ...
    arch: str = "?"
    dataset: str = "?"
    loss: str = "?"
    num_classes: int | None = None
    input_size: tuple[int, int] | None = None  # (height, width): the default window


def packaged_models() -> list[str]:
    """Names of the model directories shipped in the package (`zoo/assets/models/`)."""
    if not PACKAGED_MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in PACKAGED_MODELS_DIR.iterdir() if (p / CONFIG_NAME).is_file())


def is_packaged_dir(model_dir: str | Path) -> bool:
    """Whether `model_dir` is one of the package's own model directories."""
    return Path(model_dir).resolve().parent == PACKAGED_MODELS_DIR


def _cached_snapshots() -> dict[str, Path]:
    """Hub repo id -> snapshot folder of its `main` revision, for the model repos in the local
    Hub cache whose snapshot has config.json and model.onnx or model.safetensors."""
    from huggingface_hub import constants, scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir(constants.HF_HUB_CACHE)
    except (CacheNotFound, OSError):
        return {}
    found = {}
    for repo in sorted(cache.repos, key=lambda repo: repo.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            files = {f.file_name for f in revision.files}
            runnable = CONFIG_NAME in files and (ONNX_NAME in files or WEIGHTS_NAME in files)
            if "main" in revision.refs and runnable:
                found[repo.repo_id] = Path(revision.snapshot_path)
    return found


def cached_hub_models() -> list[str]:
    """Hub models whose `main` revision in the local Hub cache has config.json and model.onnx
    or model.safetensors: registry ids for the registry's repos, `hf-hub:org/repo` otherwise."""
    registry_ids = {spec.hub_repo: model_id for model_id, spec in MODELS.items()}
    return [registry_ids.get(repo, f"hf-hub:{repo}") for repo in _cached_snapshots()]


class _ConfigFacts(TypedDict, total=False):
    """The `ModelEntry` fields read from a config.json."""

    arch: str
    dataset: str
    loss: str
    num_classes: int
    input_size: tuple[int, int]


def _config_facts(model_dir: Path) -> _ConfigFacts:
    """arch, dataset, loss, classes and input size from a directory's config.json ("?" for
    what it lacks or when it is unreadable: a listing must not fail on one bad file)."""
    try:
        data = read_json_object(model_dir / CONFIG_NAME)
    except (OSError, ValueError):
        return {}
    loss = data.get("loss")
    size = data.get("input_size")
    facts: _ConfigFacts = {
        "arch": str(data.get("arch", "?")),
        "dataset": str(data.get("dataset", "?")),
        "loss": str(loss.get("name", "?")) if isinstance(loss, dict) else "?",
    }
    if isinstance(data.get("num_classes"), int):
        facts["num_classes"] = data["num_classes"]
    if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size):
        facts["input_size"] = (size[0], size[1])
    return facts


def _hub_note(model_id: str, cached: bool) -> str:
    """Why a registry id loads now or not, from what is known offline."""
    repo = MODELS[model_id].hub_repo
    if cached:
        return IN_CACHE
    if model_id in HUB_PUBLISHED:
        return f"published, not cached: downloads on first load ({repo})"
    if hub_namespace() != DEFAULT_HUB_NAMESPACE:
        return f"not cached, not checked offline ({repo})"
    return f"not published yet ({repo})"


def model_entries(pattern: str | None = None) -> list[ModelEntry]:
    """Every model name `zoo.load` takes without a path: the built-in models, the registry ids
    and the other Hub repos in the local cache, optionally filtered by `pattern` (a substring
    or shell pattern, as `list_models`). Built-in first, then by name."""
    cached = _cached_snapshots()
    entries = [
        ModelEntry(
            name,
            BUILT_IN,
            True,
            "ships with the package",
            **_config_facts(PACKAGED_MODELS_DIR / name),
        )
        for name in packaged_models()
    ]
    for model_id, spec in sorted(MODELS.items()):
        snapshot = cached.pop(spec.hub_repo, None)
        entries.append(
            ModelEntry(
                model_id,
                HUB,
                snapshot is not None,
                _hub_note(model_id, snapshot is not None),
                spec.arch,
                spec.dataset,
                spec.loss,
                spec.num_classes,
                spec.input_size,
            )
        )
    for repo_id, snapshot in sorted(cached.items()):
        name = f"hf-hub:{repo_id}"
        entries.append(ModelEntry(name, LOCAL_CACHE, True, IN_CACHE, **_config_facts(snapshot)))
    return [entry for entry in entries if _matches(entry.name, pattern)]


def _matches(name: str, pattern: str | None) -> bool:
    if pattern is None:
        return True
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    return fnmatch.fnmatchcase(name, pattern)


def list_models(pattern: str | None = None) -> list[str]:
    """Names `zoo.load` takes by name: the built-in models, then the registry ids (sorted),
    optionally filtered by a substring or shell pattern (`"*_cpg"`, `"synthcity"`). Offline;
    `zoo list` says which of them load now."""
    names = [*packaged_models(), *sorted(MODELS)]
    return [name for name in dict.fromkeys(names) if _matches(name, pattern)]


def hub_snapshot(model_dir: str | Path) -> tuple[str, str] | None:
    """(repo id, commit sha) of a snapshot folder of the Hub cache
    (`.../models--org--name/snapshots/<sha>`): the exact revision a Hub load resolved to;
    None for other directories."""
    path = Path(model_dir)
    sha, repo_folder = path.name, path.parent.parent.name
    is_sha = len(sha) == 40 and all(c in "0123456789abcdef" for c in sha)
    if not (is_sha and path.parent.name == "snapshots" and repo_folder.startswith("models--")):
        return None
    return repo_folder.removeprefix("models--").replace("--", "/"), sha
