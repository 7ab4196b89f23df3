"""`hf-hub:org/repo[@revision]` names: the one parser (used by `zoo.load`, the Hub client,
the CLIs and the demo). Pure string handling: importing it loads no Hub client."""

from __future__ import annotations

HF_HUB_PREFIX = "hf-hub:"


def is_hub_name(name: str) -> bool:
    """Whether `name` is an `hf-hub:` name (not a registry id or a local directory)."""
    return name.startswith(HF_HUB_PREFIX)


def parse_hub_name(name: str, revision: str | None = None) -> tuple[str, str | None]:
    """`"hf-hub:org/repo@rev"` (prefix optional) -> `("org/repo", "rev" or None)`.

    A registry id (`"lraspp_mbv3_cityscapes_cpg@v1"`) stands for its `spec.hub_repo`.
    `revision` (e.g. `zoo.load(..., revision=)`) applies when the name pins none; a name that
    pins another one is a ValueError.
    """
    from zoo.registry import MODELS

    text = name.removeprefix(HF_HUB_PREFIX)
    repo_id, _, pinned = text.partition("@")
    if repo_id in MODELS:
        repo_id = MODELS[repo_id].hub_repo
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(
            f"{name!r} is not a Hub model name: expected 'hf-hub:org/repo' or "
            "'hf-hub:org/repo@revision'"
        )
    if pinned and revision and pinned != revision:
        raise ValueError(f"{name!r} pins revision {pinned!r} but revision={revision!r}")
    return repo_id, pinned or revision or None
