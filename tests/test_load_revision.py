"""`zoo.load(name, revision=...)` of a model that is not on the Hub: refused, not ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

import zoo
from zoo.predict_cli import main as predict_main

BUILT_IN_ID = "lraspp_mbv3_synthcity_cpg"
BUILT_IN = Path(zoo.__file__).parent / "assets" / "models" / BUILT_IN_ID


@pytest.mark.parametrize("name", [str(BUILT_IN), BUILT_IN_ID])
def test_a_revision_of_a_local_model_is_refused(name: str) -> None:
    with pytest.raises(ValueError) as error:
        zoo.load(name, revision="v2")
    assert str(error.value) == (
        f"revision='v2' applies to Hub models, and {name!r} is a local model (a directory or "
        "a built-in model): load it without a revision"
    )


def test_zoo_predict_revision_of_a_local_model_is_one_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = BUILT_IN.parent.parent / "examples"
    out = tmp_path / "out"
    code = predict_main(
        [str(image), "--model", str(BUILT_IN), "--revision", "v2", "--out", str(out)]
    )
    assert code == 2
    assert "revision='v2' applies to Hub models" in capsys.readouterr().err
    assert not out.exists()
