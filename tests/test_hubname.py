"""The one `hf-hub:` name parser (zoo.load, the Hub client and the demo use it)."""

from __future__ import annotations

import pytest

from zoo.hubname import is_hub_name, parse_hub_name
from zoo.registry import MODELS


def test_names_and_revisions() -> None:
    assert parse_hub_name("hf-hub:org/repo") == ("org/repo", None)
    assert parse_hub_name("hf-hub:org/repo@v1") == ("org/repo", "v1")
    assert parse_hub_name("org/repo", revision="main") == ("org/repo", "main")
    assert parse_hub_name("hf-hub:org/repo@v1", revision="v1") == ("org/repo", "v1")
    registry_id = "lraspp_mbv3_cityscapes_cpg"
    assert parse_hub_name(f"hf-hub:{registry_id}@abc") == (MODELS[registry_id].hub_repo, "abc")
    assert is_hub_name("hf-hub:org/repo") and not is_hub_name("org/repo")


@pytest.mark.parametrize("name", ["hf-hub:repo", "hf-hub:a/b/c", "hf-hub:/repo", "hf-hub:org/"])
def test_malformed_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"expected 'hf-hub:org/repo'"):
        parse_hub_name(name)


def test_two_different_revisions_are_refused() -> None:
    with pytest.raises(ValueError, match="pins revision 'v1' but revision='v2'"):
        parse_hub_name("hf-hub:org/repo@v1", revision="v2")
