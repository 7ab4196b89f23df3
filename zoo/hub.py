"""Pull model directories from, and push them to, the Hugging Face Hub.

A Hub repo holds a model directory (see `zoo.config`). Pulls go through `huggingface_hub`'s
`snapshot_download` with `allow_patterns`, so a backend fetches only its own files into the
standard Hub cache (`HF_HOME` / `HF_HUB_CACHE`), revisions (branch, tag or commit sha) pin
exactly, and `HF_HUB_OFFLINE=1` reuses what is cached. Only JSON, Markdown, safetensors and
ONNX files are ever fetched: nothing from the Hub is unpickled.

`HF_ENDPOINT` selects the server (a mirror, or a local test server).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from zoo.backends import BACKENDS
from zoo.config import ModelConfig
from zoo.errors import HubUnreachableError, ModelNotAvailableError
from zoo.fileio import read_json_object
from zoo.hubname import parse_hub_name
from zoo.modelfiles import (
    ALL_FILES,
    CARD_NAME,
    CONFIG_NAME,
    EVAL_NAME,
    METADATA_FILES,
    MODEL_FILES,
    WEIGHTS_NAME,
)

logger = logging.getLogger(__name__)

# What git (and so the Hub) refuses in a ref name: `git check-ref-format`'s rules.
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^[/.-]|[/.]$|\.lock(/|$)|/\.")

PULL_ALL = "all"  # a pull of every file of the repo
# Everything a push may upload; nothing else in a model directory goes up.
UPLOAD_FILES = ALL_FILES


def required_files(backend: str = "onnx", precision: str = "fp32") -> list[str]:
    """The files `backend` (a row of `zoo.backends.BACKENDS`, or "all") cannot run without at
    `precision`: config.json and the file that row loads."""
    if backend == PULL_ALL:
        return [CONFIG_NAME]  # plus at least one runnable file, checked after the pull
    row = BACKENDS.get(backend)
    if row is None:
        choices = ", ".join([*BACKENDS, PULL_ALL])
        raise ValueError(f"unknown backend {backend!r}; expected one of {choices}")
    if precision not in row.files:
        raise ValueError(
            f"unknown precision {precision!r} for the {backend} backend; "
            f"expected one of {', '.join(row.files)}"
        )
    return [CONFIG_NAME, row.files[precision]]


def backend_files(backend: str = "onnx", precision: str = "fp32") -> list[str]:
    """The `allow_patterns` of a pull: the backend's required files plus the metadata files."""
    files = required_files(backend, precision)
    extra = list(MODEL_FILES) if backend == PULL_ALL else []
    return list(dict.fromkeys([*files, *extra, *METADATA_FILES]))


def _registry_id(repo_id: str) -> str | None:
    """The registry id a repo stands for, if its name is one."""
    from zoo.registry import MODELS

    name = repo_id.rsplit("/", 1)[-1]
    return name if name in MODELS else None


def _at(repo_id: str, revision: str | None) -> str:
    return f"{repo_id}@{revision}" if revision else repo_id


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def network_errors() -> tuple[type[BaseException], ...]:
    """The exception types of a failed connection in the installed Hub client's HTTP stack
    (httpx2, httpx or requests, depending on the huggingface_hub version; all of requests' are
    OSErrors)."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        errors.append(module.TransportError)
    try:
        import requests

        errors.append(requests.ConnectionError)
        errors.append(requests.Timeout)
    except ImportError:
        pass
    return tuple(errors)


def _reason(error: BaseException) -> str:
    """`Type: first line` of the error a network failure came from."""
    cause = error.__cause__ or error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else 'no details'}"


def _refs_hint(repo_id: str, token: str | bool | None) -> str | None:
    """ "branches: ...; tags: ..." of a repo that exists, or None when it cannot be listed."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        refs = HfApi(token=token).list_repo_refs(repo_id)
    except (HfHubHTTPError, OSError):
        return None
    branches = ", ".join(ref.name for ref in refs.branches) or "none"
    tags = ", ".join(ref.name for ref in refs.tags) or "none"
    return f"branches: {branches}; tags: {tags}"


def _not_found_message(repo_id: str, revision: str | None, token: str | bool | None) -> str:
    if revision is not None:
        refs = _refs_hint(repo_id, token)
        if refs is not None:
            return (
                f"revision {revision!r} not found in {repo_id} ({refs}): "
                "pass an existing branch, tag or commit sha."
            )
    model_id = _registry_id(repo_id)
    if model_id is not None:
        return (
            f"{model_id} is not published at {repo_id} yet: train it with "
            f"`zoo train {model_id} --data-root DATA --out runs/{model_id}`, export it with "
            f"`zoo export runs/{model_id}/best.pt --out MODEL_DIR`, and push it with "
            f"`zoo push MODEL_DIR --repo {repo_id}`; or pass a local model directory "
            "(set CPG_ZOO_HUB_NAMESPACE if the zoo lives under another organisation)."
        )
    return (
        f"no model repo {repo_id} on {_endpoint()} (or it is private or gated: log in with "
        "`hf auth login` or pass a token); check the name, or pass a local model directory."
    )


def download_model(
    repo_id: str,
    revision: str | None = None,
    backend: str = "onnx",
    precision: str = "fp32",
    *,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """Download the files `backend` needs from Hub repo `repo_id` at `revision`; return the dir.

    `backend`: a row of `zoo.backends.BACKENDS` (config, eval, card and the file that row loads
    at `precision`, e.g. "onnx"/"int8" -> model.int8.onnx, "torch" -> model.safetensors) or
    "all". `revision`: branch, tag or commit
    sha (default: main). The result is a snapshot folder of the standard Hub cache; a second
    call, or any call under `HF_HUB_OFFLINE=1`, reuses it. Raises `ModelNotAvailableError`
    saying which and what to do when the repo, the revision or the backend's files are missing,
    or when the Hub is unreachable and the files are not cached.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, name_revision = parse_hub_name(repo_id)
    revision = revision or name_revision
    needed = required_files(backend, precision)
    patterns = backend_files(backend, precision)
    where = _at(repo_id, revision)
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=patterns,
            token=token,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
    except RevisionNotFoundError:
        raise ModelNotAvailableError(_not_found_message(repo_id, revision, token)) from None
    except RepositoryNotFoundError:
        raise ModelNotAvailableError(_not_found_message(repo_id, revision, token)) from None
    except LocalEntryNotFoundError as error:
        from huggingface_hub import constants

        if local_files_only or constants.HF_HUB_OFFLINE:
            why = "downloads are off (HF_HUB_OFFLINE=1 or local_files_only=True)"
        else:
            why = f"the Hub at {_endpoint()} cannot be reached ({_reason(error)})"
        raise HubUnreachableError(
            f"{where} is not in the local Hub cache and {why}. Download it once while online, "
            "or pass a local model directory."
        ) from error
    except HfHubHTTPError as error:
        raise ModelNotAvailableError(
            f"the Hub at {_endpoint()} failed while fetching {where}: {error}"
        ) from error
    except network_errors() as error:  # a failure outside snapshot_download's own handling
        raise HubUnreachableError(
            f"{where} cannot be fetched: the Hub at {_endpoint()} cannot be reached "
            f"({_reason(error)}). Try again, or pass a local model directory."
        ) from error
    path = Path(folder)
    missing = [name for name in needed if not (path / name).is_file()]
    runnable = MODEL_FILES
    if backend == "all" and not any((path / name).is_file() for name in runnable):
        missing.append(f"weights (any of {', '.join(runnable)})")
    if missing:
        present = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        raise ModelNotAvailableError(
            f"{where} has no {', '.join(missing)} for backend={backend!r} "
            f"precision={precision!r} (fetched: {', '.join(present) or 'nothing'}): "
            "use another backend/precision, or export and push the missing files."
        )
    return path


def validate_model_dir(model_dir: str | Path) -> ModelConfig:
    """Check that `model_dir` is a pushable model directory; return its config.

    Needs a loadable `config.json` and `model.safetensors` with a readable header; checks
    that `eval.json` (if present) is a JSON object and that ONNX files are not empty.
    """
    from safetensors import safe_open

    directory = Path(model_dir)
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory")
    try:
        config = ModelConfig.load(directory)
    except (FileNotFoundError, ValueError, TypeError) as error:
        raise ValueError(f"{directory} is not a valid model directory: {error}") from None
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise ValueError(f"{directory} has no {WEIGHTS_NAME}: export the model first")
    try:
        with safe_open(str(weights), framework="numpy") as handle:
            if not list(handle.keys()):
                raise ValueError(f"{weights} holds no tensors")
    except ValueError:
        raise
    except Exception as error:
        raise ValueError(f"{weights} is not a readable safetensors file: {error}") from None
    for name in MODEL_FILES:
        model_file = directory / name
        if model_file.exists() and model_file.stat().st_size == 0:
            raise ValueError(f"{model_file} is empty")
    eval_path = directory / EVAL_NAME
    if eval_path.exists():
        read_json_object(eval_path)  # a clear error before anything is uploaded
    return config


def full_repo_id(repo_id: str, token: str | None = None) -> str:
    """`org/name` as it is; a bare `name` gets the token's account (`user/name`), as the Hub's
    repo creation does. Raises ValueError when a bare name has no token to ask the Hub with,
    ConnectionError when the Hub cannot be reached."""
    if "/" in repo_id:
        return repo_id
    from huggingface_hub import HfApi
    from huggingface_hub.errors import LocalTokenNotFoundError

    try:
        user = HfApi(token=token).whoami()["name"]
    except LocalTokenNotFoundError:
        raise ValueError(
            f"repo id {repo_id!r} has no namespace and no Hub token is set to find your user "
            f"name: pass USER/{repo_id} or ORG/{repo_id}, or log in (hf auth login, HF_TOKEN)"
        ) from None
    except network_errors() as error:
        raise ConnectionError(f"cannot reach {_endpoint()}: {_reason(error)}") from error
    return f"{user}/{repo_id}"


def push_model_dir(
    model_dir: str | Path,
    repo_id: str,
    revision: str | None = None,
    tag: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a model directory to Hub repo `repo_id` in one commit; return its sha.

    A `repo_id` without a namespace goes to the token's account (`full_repo_id`).

    Creates the repo if needed (`private` applies only then) and branch `revision` if it does
    not exist yet, uploads only the model-directory files (`UPLOAD_FILES`), deletes those the
    directory lacks, and tags the commit with `tag` if given (an existing tag is an error:
    tags pin releases). In place of a missing `README.md`, or of the one `zoo card` generated
    for the local directory, the commit carries a card whose usage loads from `repo_id`
    (rendered in memory); a hand-edited card goes up as it is. The local directory is never
    changed: its card keeps loading the directory, and a failed push leaves nothing behind.
    Raises ValueError for a bad directory, or a reused or invalid tag (checked before the
    commit: nothing is pushed), or a tag that fails after the commit (the message names the
    commit that went up), and ConnectionError ("cannot
    reach <endpoint>: <reason>") when the Hub cannot be reached.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from zoo.cards import repo_card_text

    directory = Path(model_dir)
    config = validate_model_dir(directory)
    repo_id = full_repo_id(repo_id, token)
    if tag is not None and (tag == "@" or _BAD_REF.search(tag)):
        raise ValueError(
            f"tag {tag!r} is not a valid git tag name (no spaces, ~ ^ : ? * [ \\, '..', "
            "leading '-' or '.', trailing '.' or '/'): nothing was pushed"
        )
    card = repo_card_text(directory, repo_id)  # None: the directory's own card goes up
    if card is not None:
        logger.info("uploading a card that loads from %s (the local one is unchanged)", repo_id)
    files = [n for n in UPLOAD_FILES if (directory / n).is_file() or (n == CARD_NAME and card)]
    contents: dict[str, Path | bytes] = {name: directory / name for name in files}
    if card is not None:
        contents[CARD_NAME] = card.encode()
    additions = [CommitOperationAdd(name, content) for name, content in contents.items()]
    api = HfApi(token=token)
    label = config.model_id or f"{config.arch} {config.dataset}"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if tag is not None and tag in {ref.name for ref in api.list_repo_refs(repo_id).tags}:
            raise ValueError(
                f"tag {tag!r} already exists in {repo_id}: nothing was pushed; choose a new tag"
            )
        if revision is not None and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        # A file the new directory lacks (say model.int8.onnx of the previous weights) must
        # not survive at the new revision: it would no longer match the weights.
        stale = set(api.list_repo_files(repo_id, revision=revision)) & set(UPLOAD_FILES)
        deletions = [CommitOperationDelete(path_in_repo=name) for name in sorted(stale - {*files})]
        commit = api.create_commit(
            repo_id,
            operations=[*deletions, *additions],
            revision=revision,
            commit_message=commit_message or f"Upload {label} ({', '.join(files)})",
        )
    except HfHubHTTPError:
        raise
    except network_errors() as error:
        raise ConnectionError(f"cannot reach {_endpoint()}: {_reason(error)}") from error
    sha = commit.oid
    if tag is not None:
        try:
            api.create_tag(repo_id, tag=tag, revision=sha, tag_message=f"{label} {tag}")
        except HfHubHTTPError as error:
            if error.response is not None and error.response.status_code == 409:
                why = "it already exists (created meanwhile)"
            else:
                why = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ValueError(
                f"commit {sha} was pushed to {repo_id}@{revision or 'main'}, but tagging it "
                f"{tag!r} failed: {why}"
            ) from None
    return sha
