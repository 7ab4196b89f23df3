"""zoo.hub against a real local Hub server (olah + the write front of tests/hub_server.py).

No mock of huggingface_hub: pushes go through `HfApi` (create repo, preupload, LFS upload,
NDJSON commit, branch, tag) and pulls through `snapshot_download`, over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_modeldir import make_model_dir, smooth_image

import zoo
from zoo.cards import write_card
from zoo.config import ModelConfig
from zoo.errors import ModelNotAvailableError
from zoo.hub import UPLOAD_FILES, download_model, push_model_dir
from zoo.hub_cli import push_main
from zoo.modelfiles import (
    CARD_NAME,
    CONFIG_NAME,
    EVAL_NAME,
    ONNX_INT8_NAME,
    ONNX_NAME,
    WEIGHTS_NAME,
)
from zoo.registry import HUB_NAMESPACE_ENV

pytest_plugins = ["conftest_hub"]  # fixtures hub_server, hub

MODEL_ID = "lraspp_mbv3_cityscapes_cpg"
ORG = "testorg"
EVAL = {
    "dataset": "cityscapes",
    "split": "val",
    "metrics": {"mIoU": 0.4321, "pixel_acc": 0.9012, "per_class_iou": [0.5, 0.4, 0.3, 0.5]},
    "command": "zoo eval ...",
    "git_commit": "0123abc",
}


def _model_dir(root: Path, seed: int) -> Path:
    directory = make_model_dir(root / f"model{seed}", seed=seed)
    config = ModelConfig.load(directory)
    config.model_id = MODEL_ID
    config.loss = {"name": "cpg", "lambda": 1.0, "kernel_size": 3}
    config.recipe = {"iterations": 10, "crop_size": [64, 96]}
    config.save(directory)
    (directory / EVAL_NAME).write_text(json.dumps(EVAL | {"seed": seed}))
    write_card(directory, repo_id=f"{ORG}/{MODEL_ID}")
    # Things that must never be uploaded.
    (directory / "notes.txt").write_text("scratch")
    (directory / "checkpoint.pt").write_bytes(b"not a pickle, but must stay local")
    return directory


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two model directories of the same model with different (BN-calibrated) weights."""
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("models")
    return _model_dir(root, 0), _model_dir(root, 1)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return smooth_image(64, 96, seed=7)


def set_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub's offline mode on (env and the constant it already read)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def _same_files(local: Path, pulled: Path, names: list[str]) -> None:
    for name in names:
        assert (pulled / name).read_bytes() == (local / name).read_bytes(), name


def test_push_pull_load_predict(hub, model_dirs, image, monkeypatch):
    local, _ = model_dirs
    monkeypatch.setenv(HUB_NAMESPACE_ENV, ORG)
    repo = f"{ORG}/{MODEL_ID}"
    sha = push_model_dir(local, repo, tag="v1")

    from huggingface_hub import HfApi

    files = set(HfApi().list_repo_files(repo, revision=sha))
    assert files == {".gitattributes", CONFIG_NAME, WEIGHTS_NAME, ONNX_NAME, EVAL_NAME, CARD_NAME}
    pulled = download_model(repo, revision=sha, backend="all")
    _same_files(local, pulled, [CONFIG_NAME, WEIGHTS_NAME, ONNX_NAME, EVAL_NAME, CARD_NAME])

    expected = zoo.load(local, backend="onnx").predict(image)
    assert len(np.unique(expected)) > 1, "test model must give a non-constant mask"
    for name, backend in [(MODEL_ID, "onnx"), (f"hf-hub:{repo}@v1", "torch")]:
        mask = zoo.load(name, backend=backend).predict(image)
        np.testing.assert_array_equal(mask, expected, err_msg=f"{name} {backend}")


def test_revision_pinning(hub, model_dirs, image):
    first, second = model_dirs
    repo = f"{ORG}/pinning"
    sha1 = push_model_dir(first, repo, tag="v1")
    sha2 = push_model_dir(second, repo)
    assert sha1 != sha2
    assert (second / WEIGHTS_NAME).read_bytes() != (first / WEIGHTS_NAME).read_bytes()

    def weights(revision: str | None) -> bytes:
        return (
            download_model(repo, revision=revision, backend="torch") / WEIGHTS_NAME
        ).read_bytes()

    assert weights(None) == (second / WEIGHTS_NAME).read_bytes()
    assert weights("main") == (second / WEIGHTS_NAME).read_bytes()
    assert weights(sha1) == (first / WEIGHTS_NAME).read_bytes()
    assert weights("v1") == (first / WEIGHTS_NAME).read_bytes()
    assert download_model(f"hf-hub:{repo}@{sha1}").name == sha1

    old = zoo.load(f"hf-hub:{repo}@v1", backend="onnx").predict(image)
    new = zoo.load(f"hf-hub:{repo}", backend="onnx").predict(image)
    np.testing.assert_array_equal(old, zoo.load(first, backend="onnx").predict(image))
    np.testing.assert_array_equal(new, zoo.load(second, backend="onnx").predict(image))
    assert not np.array_equal(old, new), "the two weight sets should segment differently"


def test_a_new_push_removes_files_the_directory_no_longer_has(hub, model_dirs, tmp_path):
    """An int8 ONNX file of the old weights must not stay next to the new weights."""
    import shutil

    from huggingface_hub import HfApi

    first, second = model_dirs
    with_int8 = tmp_path / "with_int8"
    shutil.copytree(first, with_int8)
    shutil.copy(with_int8 / ONNX_NAME, with_int8 / ONNX_INT8_NAME)  # a stand-in int8 file
    repo = f"{ORG}/stale"
    old = push_model_dir(with_int8, repo)
    new = push_model_dir(second, repo)
    assert ONNX_INT8_NAME in HfApi().list_repo_files(repo, revision=old)
    assert ONNX_INT8_NAME not in HfApi().list_repo_files(repo, revision=new)
    assert ONNX_NAME in HfApi().list_repo_files(repo, revision=new)


def test_cli_push_to_branch_and_tag(hub, model_dirs, capsys):
    first, second = model_dirs
    repo = f"{ORG}/branches"
    assert push_main([str(first), "--repo", repo, "--private"]) == 0
    code = push_main([str(second), "--repo", repo, "--revision", "dev", "--tag", "dev-1"])
    assert code == 0
    out = capsys.readouterr().out
    assert f"to {repo}@dev: commit" in out and "tagged dev-1" in out
    for revision, source in [("dev", second), ("dev-1", second), ("main", first)]:
        pulled = download_model(repo, revision=revision, backend="onnx")
        _same_files(source, pulled, [ONNX_NAME])
    # A tag is a release pin: reusing it is an error, reported by the CLI.
    assert push_main([str(first), "--repo", repo, "--tag", "dev-1"]) == 2
    assert "tag 'dev-1' already exists" in capsys.readouterr().err


def test_a_bare_repo_name_goes_to_the_token_account(hub, model_dirs, capsys, monkeypatch, tmp_path):
    """`--repo NAME` is `user/NAME` (the Hub's create_repo does the same): the commit, the
    card's usage and the printed pin name the full id; without a token it says what to pass."""
    import shutil

    first = tmp_path / "nocard"
    shutil.copytree(model_dirs[0], first)
    (first / CARD_NAME).unlink()
    assert push_main([str(first), "--repo", "bare"]) == 2
    err = capsys.readouterr().err
    assert "'bare' has no namespace" in err and "USER/bare" in err
    assert not (hub.mirrors / "models" / "user" / "bare").exists()

    monkeypatch.setenv("HF_TOKEN", "hf_local_test_token")
    assert push_main([str(first), "--repo", "bare"]) == 0
    out = capsys.readouterr().out
    assert "to user/bare@main: commit" in out and "zoo.load('hf-hub:user/bare@" in out
    pulled = download_model("user/bare", backend="onnx")
    _same_files(first, pulled, [ONNX_NAME])
    assert 'zoo.load("hf-hub:user/bare")' in (pulled / CARD_NAME).read_text()


def test_a_reused_tag_pushes_nothing(hub, model_dirs, capsys):
    from huggingface_hub import HfApi

    first, second = model_dirs
    repo = f"{ORG}/retag"
    sha = push_model_dir(first, repo, tag="v1")
    assert push_main([str(second), "--repo", repo, "--tag", "v1"]) == 2
    main = HfApi().list_repo_refs(repo).branches
    assert [(ref.name, ref.target_commit) for ref in main] == [("main", sha)]
    err = capsys.readouterr().err
    assert f"tag 'v1' already exists in {repo}: nothing was pushed; choose a new tag" in err
    pulled = download_model(repo, revision="main", backend="torch")
    _same_files(first, pulled, [WEIGHTS_NAME])


def test_a_tag_git_refuses_pushes_nothing(hub, model_dirs, capsys):
    from huggingface_hub import HfApi

    first, second = model_dirs
    repo = f"{ORG}/badtag"
    sha = push_model_dir(first, repo)
    for tag in ("release 2", "v1..2", "v2/", "v2.lock"):
        assert push_main([str(second), "--repo", repo, "--tag", tag]) == 2
        main = HfApi().list_repo_refs(repo)
        assert [(ref.name, ref.target_commit) for ref in main.branches] == [("main", sha)]
        assert main.tags == []
        err = capsys.readouterr().err
        assert f"tag {tag!r} is not a valid git tag name" in err and "nothing was pushed" in err


def test_a_tag_that_fails_after_the_commit_says_the_commit_went_up(
    hub, model_dirs, capsys, monkeypatch
):
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    def refuse(self, repo_id, **kwargs):
        request = httpx2.Request("POST", f"{hub.endpoint}/api/models/{repo_id}/tag/x")
        response = httpx2.Response(500, request=request)
        raise HfHubHTTPError("500 Server Error: tag store down", response=response)

    monkeypatch.setattr(HfApi, "create_tag", refuse)
    first, _ = model_dirs
    repo = f"{ORG}/tagdown"
    assert push_main([str(first), "--repo", repo, "--tag", "v1"]) == 2
    sha = HfApi().list_repo_refs(repo).branches[0].target_commit
    err = capsys.readouterr().err
    assert (
        f"commit {sha} was pushed to {repo}@main, but tagging it 'v1' failed: 500 Server "
        "Error: tag store down"
    ) in err


def test_backend_downloads_only_its_files(hub, model_dirs, tmp_path):
    local, _ = model_dirs
    repo = f"{ORG}/patterns"
    sha = push_model_dir(local, repo)
    metadata = {CONFIG_NAME, EVAL_NAME, CARD_NAME}
    cases = {
        "onnx": metadata | {ONNX_NAME},
        "torch": metadata | {WEIGHTS_NAME},
        "all": metadata | {ONNX_NAME, WEIGHTS_NAME},
    }
    for backend, expected in cases.items():
        start = len(hub.requests)
        path = download_model(repo, backend=backend, cache_dir=tmp_path / backend)
        assert {p.name for p in path.iterdir()} == expected, backend
        fetched = {
            line.rsplit("/", 1)[-1]
            for line in hub.requests[start:]
            if line.startswith("GET ") and f"/resolve/{sha}/" in line
        }
        assert fetched == expected, backend
    with pytest.raises(ModelNotAvailableError, match=r"has no model\.int8\.onnx"):
        download_model(repo, backend="onnx", precision="int8")
    with pytest.raises(ValueError, match="unknown backend"):
        download_model(repo, backend="tensorflow")


def test_offline_reuse_from_cache(hub, model_dirs, image, monkeypatch):
    local, _ = model_dirs
    repo = f"{ORG}/offline"
    push_model_dir(local, repo, tag="v1")
    online = download_model(repo, backend="onnx")
    pinned = download_model(repo, revision="v1", backend="onnx")
    expected = zoo.load(local, backend="onnx").predict(image)
    hub.stop()
    try:
        # Server gone, offline mode not set: huggingface_hub falls back to the cache.
        assert download_model(repo, backend="onnx") == online
        set_offline(monkeypatch)
        assert download_model(repo, backend="onnx") == online
        assert download_model(repo, revision="v1", backend="onnx") == pinned
        mask = zoo.load(f"hf-hub:{repo}", backend="onnx").predict(image)
        np.testing.assert_array_equal(mask, expected)
        with pytest.raises(ModelNotAvailableError, match="not in the local Hub cache"):
            download_model(f"{ORG}/never-pulled")
        with pytest.raises(ModelNotAvailableError, match="not in the local Hub cache"):
            download_model(repo, backend="torch")  # only the ONNX files are cached
    finally:
        hub.start()


def test_missing_repo_and_revision_errors(hub, model_dirs, monkeypatch):
    monkeypatch.setenv(HUB_NAMESPACE_ENV, ORG)
    unpublished = "lraspp_mbv3_ade20k_cpg"
    with pytest.raises(ModelNotAvailableError) as info:
        download_model(f"{ORG}/{unpublished}")
    message = str(info.value)
    assert f"{unpublished} is not published at {ORG}/{unpublished} yet" in message
    assert f"zoo train {unpublished} --data-root DATA --out runs/{unpublished}" in message
    with pytest.raises(ModelNotAvailableError, match="not published"):
        zoo.load(unpublished)
    with pytest.raises(ModelNotAvailableError, match=f"no model repo {ORG}/nothing-here"):
        download_model(f"hf-hub:{ORG}/nothing-here")

    repo = f"{ORG}/revisions"
    push_model_dir(model_dirs[0], repo, tag="v1")
    with pytest.raises(ModelNotAvailableError, match=r"revision 'v9' not found .*tags: v1"):
        download_model(repo, revision="v9")


def test_push_rejects_invalid_model_dirs(hub, model_dirs, tmp_path, capsys):
    repo = f"{ORG}/invalid"
    with pytest.raises(ValueError, match="not a valid model directory"):
        push_model_dir(tmp_path, repo)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / CONFIG_NAME).write_bytes((model_dirs[0] / CONFIG_NAME).read_bytes())
    with pytest.raises(ValueError, match=r"has no model\.safetensors"):
        push_model_dir(broken, repo)
    (broken / WEIGHTS_NAME).write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        push_model_dir(broken, repo)
    assert push_main([str(broken), "--repo", repo]) == 2
    assert "zoo push: " in capsys.readouterr().err
    assert not (hub.mirrors / "models" / repo).exists(), "nothing is created for a bad dir"


def _tree(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_push_uploads_the_repo_card_and_leaves_the_directory_alone(hub, model_dirs, tmp_path):
    """The Hub copy gets a card that loads from its repo; the local directory is not touched
    (no card is written, a local card keeps loading the local directory), and a hand-edited
    card goes up as it is."""
    import shutil

    directory = tmp_path / "mine"
    shutil.copytree(model_dirs[0], directory)
    (directory / CARD_NAME).unlink()
    before = _tree(directory)
    push_model_dir(directory, f"{ORG}/nocard")
    assert _tree(directory) == before, "a push wrote into the model directory"
    pulled = download_model(f"{ORG}/nocard", backend="onnx")
    assert f'zoo.load("hf-hub:{ORG}/nocard")' in (pulled / CARD_NAME).read_text()
    assert set(UPLOAD_FILES) >= {p.name for p in pulled.iterdir()}

    write_card(directory)  # `zoo card DIR`: usage loads the directory
    before = _tree(directory)
    push_model_dir(directory, f"{ORG}/localcard")
    assert _tree(directory) == before, "a push rewrote the local card"
    pulled = download_model(f"{ORG}/localcard", backend="onnx")
    assert f'zoo.load("hf-hub:{ORG}/localcard")' in (pulled / CARD_NAME).read_text()

    edited = before[CARD_NAME] + b"\nNotes by the author.\n"
    (directory / CARD_NAME).write_bytes(edited)
    push_model_dir(directory, f"{ORG}/edited")
    assert (download_model(f"{ORG}/edited") / CARD_NAME).read_bytes() == edited
    assert (directory / CARD_NAME).read_bytes() == edited


def test_a_failed_push_leaves_the_local_card_alone(model_dirs, tmp_path, monkeypatch, capsys):
    """A push to an unreachable Hub fails with one line and changes nothing locally (it used
    to rewrite README.md to load from the repo that was never created)."""
    import shutil

    from tests.helpers_hub import point_hub_client

    point_hub_client(monkeypatch, "http://127.0.0.1:9", tmp_path / "hf-home")  # refused
    directory = tmp_path / "mine"
    shutil.copytree(model_dirs[0], directory)
    write_card(directory)
    before = _tree(directory)
    assert push_main([str(directory), "--repo", "me/other", "--tag", "v1"]) == 1
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err
    assert _tree(directory) == before, "a failed push changed the model directory"


def test_hub_loads_record_the_resolved_commit(
    hub, model_dirs, image, monkeypatch, tmp_path, capsys
):
    """A load at a branch (or by registry id) records the commit the branch pointed to, as
    the server's repo has it: the prediction can be traced to exact weights."""
    import subprocess

    from huggingface_hub import HfApi
    from PIL import Image

    from zoo.predict_cli import main as predict_main

    first, second = model_dirs
    repo = f"{ORG}/provenance"
    push_model_dir(first, repo)
    push_model_dir(second, repo, revision="dev")
    server_repo = hub.mirrors / "models" / repo
    git_dev = subprocess.run(
        ["git", "-C", str(server_repo), "rev-parse", "refs/heads/dev"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert HfApi().model_info(repo, revision="dev").sha == git_dev

    segmenter = zoo.load(f"hf-hub:{repo}@dev", backend="onnx")
    assert segmenter.revision == git_dev
    assert f"revision='{git_dev}'" in repr(segmenter)
    assert "precision='fp32'" in repr(segmenter)

    registry_id = "lraspp_mbv3_cocostuff_ce"  # any registry id: its repo is NAMESPACE/id
    monkeypatch.setenv(HUB_NAMESPACE_ENV, ORG)
    main_sha = push_model_dir(first, f"{ORG}/{registry_id}")
    assert zoo.load(registry_id, backend="onnx").revision == main_sha
    assert zoo.load(first, backend="onnx").revision is None  # a local directory has none

    Image.fromarray(image).save(tmp_path / "street.png")
    argv = [str(tmp_path / "street.png"), "--model", f"hf-hub:{repo}@dev", "--out",
            str(tmp_path / "out"), "--quiet", "-v"]  # fmt: skip
    assert predict_main(argv) == 0
    assert f"model hf-hub:{repo}@dev at Hub commit {git_dev}" in capsys.readouterr().err
