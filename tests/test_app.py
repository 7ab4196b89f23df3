"""The Gradio demo (`app.py`) served as a subprocess and driven by `gradio_client`."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.app_server import app_env, free_port, start_app, stop_app
from tests.helpers_hub import fake_hub_cache

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "zoo" / "assets" / "examples").glob("*.png"))
SHIPPED_MODEL = ROOT / "zoo" / "assets" / "models" / "lraspp_mbv3_synthcity_cpg"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")


# ------------------------------------------------------------------ helpers (also for test_browser)
def build_test_model(base: Path) -> Path:
    """A 19-class SynthCity LRASPP model directory (BN-calibrated random weights), built once
    per pytest session under `base`."""
    directory = base / "app_model"
    if (directory / "config.json").is_file():
        return directory
    from helpers_modeldir import make_model_dir

    from zoo.config import ModelConfig

    work = base / "app_model.partial"
    make_model_dir(work, num_classes=19, dataset="synthcity", input_size=(256, 512))
    config = ModelConfig.for_dataset(
        "lraspp_mbv3", "synthcity", input_size=[256, 512], model_id="test_lraspp_synthcity"
    )
    config.save(work)  # real class names and palette
    work.rename(directory)
    return directory


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_model(tmp_path_factory.getbasetemp())


SERVED_MODEL = "models/quick"  # the README's `python app.py --model models/quick`


@pytest.fixture(scope="module")
def served(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app serving the test model as the relative directory SERVED_MODEL: (url, log)."""
    temp = tmp_path_factory.mktemp("app")
    (temp / SERVED_MODEL).parent.mkdir(parents=True)
    (temp / SERVED_MODEL).symlink_to(model_dir, target_is_directory=True)
    process, url = start_app(temp, "--model", SERVED_MODEL)
    yield url, process.log_path
    stop_app(process)


@pytest.fixture(scope="module")
def server(served: tuple[str, Path]) -> str:
    return served[0]


@pytest.fixture(scope="module")
def client(server: str, tmp_path_factory: pytest.TempPathFactory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    return gradio_client.Client(
        server, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads"))
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Odd and bad uploads."""
    folder = tmp_path_factory.mktemp("inputs")
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8), (48, 1))).save(folder / "gray.png")
    rgba = np.random.default_rng(0).integers(0, 256, (37, 53, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    Image.new("RGB", (1, 1), (200, 30, 30)).save(folder / "one.png")
    Image.new("I;16", (40, 30), 30000).save(folder / "sixteen.png")
    Image.new("RGB", (3000, 1800), (90, 90, 90)).save(folder / "huge.png")
    Image.new("L", (8000, 7000)).save(folder / "bomb.png")  # 56 megapixels, a small file
    (folder / "fake.png").write_bytes(b"this is not a PNG at all")
    (folder / "notes.txt").write_text("plain text\n")
    with (folder / "big.png").open("wb") as file:  # over max_file_size (20 MB)
        file.write(os.urandom(21 * 1024 * 1024))
    return folder


def segment(client, path: Path, model: str, backend: str = "onnx"):
    """Call the `/segment` endpoint; returns (mask image, shares, info)."""
    mask_path, shares, info = client.predict(
        gradio_client.handle_file(str(path)), model, backend, api_name="/segment"
    )
    with Image.open(mask_path) as mask:
        mask.load()
    return mask, shares, info


def check_result(result, size: tuple[int, int]) -> None:
    """Mask of `size` (W, H) whose ids are exactly the table's classes."""
    mask, shares, info = result
    assert mask.size == size
    assert mask.mode == "P", "the mask must be a lossless palette PNG of class ids"
    ids = sorted(int(i) for i in np.unique(np.asarray(mask)))
    rows = shares["data"]
    assert shares["headers"] == ["id", "class", "share %"]
    assert sorted(int(row[0]) for row in rows) == ids
    assert sum(row[2] for row in rows) == pytest.approx(100.0, abs=0.1)
    assert "Inference:" in info and " ms " in info and "CPU" in info


# ------------------------------------------------------------------ tests
def test_import_builds_nothing_and_demo_builds() -> None:
    import app

    assert app.DEFAULT_MODEL == "lraspp_mbv3_synthcity_cpg"
    demo = app.build_demo()
    assert demo.__class__.__name__ == "Blocks"
    names = {dep.api_name for dep in demo.fns.values()}
    assert {"segment", "load_model"} <= names
    assert not (ROOT / "app.pyi").exists(), "a gr.Component subclass made Gradio write app.pyi"


def test_overlay_is_redrawn_from_the_shown_mask(model_dir: Path) -> None:
    import app
    import zoo

    app.build_demo(str(model_dir))  # lists the model
    segmenter = zoo.load(model_dir, backend="onnx")
    mask = segmenter.mask_image(segmenter.predict(EXAMPLES[0]))
    update = app.draw_overlay(str(EXAMPLES[0]), mask, (str(model_dir), "onnx"), 0.3)
    layers = update.value["annotations"]
    assert layers and len(layers) == len(np.unique(np.asarray(mask)))
    assert app.draw_overlay(None, None, None, 0.3).value is None
    # The legend: the name and palette colour of each class present, from config.json.
    config = json.loads((model_dir / "config.json").read_text())
    expected = {
        config["classes"][i]: "#{:02x}{:02x}{:02x}".format(*config["palette"][i])
        for i in np.unique(np.asarray(mask))
    }
    assert update.color_map == expected
    assert sorted(layer["label"] for layer in layers) == sorted(expected)


def test_main_reports_an_unavailable_model(tmp_path: Path, capsys) -> None:
    import app

    assert app.main(["--model", str(tmp_path / "missing"), "--port", str(free_port())]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_examples_ship() -> None:
    assert len(EXAMPLES) == 3
    for path in EXAMPLES:
        assert path.stat().st_size < 300_000
        with Image.open(path) as image:
            assert image.size == (512, 256) and image.mode == "RGB"


def test_segment_an_example(client, model_dir: Path) -> None:
    result = segment(client, EXAMPLES[0], SERVED_MODEL)
    check_result(result, (512, 256))
    assert "Note" not in result[2]


def test_mask_matches_the_library(client, model_dir: Path) -> None:
    import zoo

    mask, _, _ = segment(client, EXAMPLES[1], SERVED_MODEL)
    expected = zoo.load(model_dir, backend="onnx").predict(EXAMPLES[1])
    assert (np.asarray(mask) == expected).mean() > 0.999


def test_torch_backend(client, model_dir: Path) -> None:
    check_result(segment(client, EXAMPLES[2], SERVED_MODEL, backend="torch"), (512, 256))


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("gray.png", (64, 48)),
        ("rgba.png", (53, 37)),
        ("one.png", (1, 1)),
        ("sixteen.png", (40, 30)),
    ],
)
def test_odd_images(
    client, model_dir: Path, inputs: Path, name: str, size: tuple[int, int]
) -> None:
    check_result(segment(client, inputs / name, SERVED_MODEL), size)


def test_huge_image_is_resized_with_a_note(client, model_dir: Path, inputs: Path) -> None:
    result = segment(client, inputs / "huge.png", SERVED_MODEL)
    check_result(result, (2048, 1229))
    assert "Resized from 3000x1800 to 2048x1229" in result[2]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("fake.png", "fake.png is not a readable image"),
        ("notes.txt", "notes.txt is not a readable image"),
        ("bomb.png", "56 megapixels"),
    ],
)
def test_bad_files_give_clear_errors(
    client, model_dir: Path, inputs: Path, name: str, message: str
) -> None:
    with pytest.raises(gradio_client.exceptions.AppError, match=message) as error:
        segment(client, inputs / name, SERVED_MODEL)
    assert "Traceback" not in str(error.value) and "/tmp" not in str(error.value)


def test_upload_size_limit(client, server: str, model_dir: Path, inputs: Path) -> None:
    with pytest.raises(ValueError, match="maximum file size"):
        segment(client, inputs / "big.png", SERVED_MODEL)
    # The server enforces it too, whatever the client does.
    import httpx

    with (inputs / "big.png").open("rb") as file:
        response = httpx.post(f"{server}gradio_api/upload", files={"files": file}, timeout=60)
    assert response.status_code == 413


def test_unavailable_model_says_why(client, model_dir: Path) -> None:
    status = client.predict("deeplabv3_r50_cityscapes_cpg", "onnx", api_name="/load_model")
    assert status.startswith("**Model not available:**")
    assert "deeplabv3_r50_cityscapes_cpg" in status
    with pytest.raises(gradio_client.exceptions.AppError, match="deeplabv3_r50_cityscapes_cpg"):
        segment(client, EXAMPLES[0], "deeplabv3_r50_cityscapes_cpg")
    status = client.predict("hf-hub:nobody/nothing", "onnx", api_name="/load_model")
    assert "not available" in status
    check_result(segment(client, EXAMPLES[0], SERVED_MODEL), (512, 256))  # still serving


def test_server_paths_cannot_be_loaded(client) -> None:
    with pytest.raises(gradio_client.exceptions.AppError, match="Unknown model"):
        segment(client, EXAMPLES[0], "/etc")


def test_load_model_reports_the_device(client, model_dir: Path) -> None:
    status = client.predict(SERVED_MODEL, "onnx", api_name="/load_model")
    assert "ready" in status and "CPUExecutionProvider" in status
    assert "trained on **SynthCity** with the `ce` loss" in status  # the test model's config


@pytest.mark.parametrize(
    "name", ["no_such_model_h3", "hrnetv2_w48_ocr_ade20k_ce", "hf-hub:nobody/unreachable-h3"]
)
def test_unavailable_models_give_one_line_and_no_traceback(
    client, served: tuple[str, Path], name: str
) -> None:
    """Issue 15.6: an unknown, unpublished or unreachable model typed by a visitor is a
    one-line message for the visitor and one log line per request, without a traceback."""
    status = client.predict(name, "onnx", api_name="/load_model")
    assert status.startswith("**Model not available:**") and name in status
    with pytest.raises(gradio_client.exceptions.AppError, match="") as error:
        segment(client, EXAMPLES[0], name)
    assert name in str(error.value) and "\n" not in str(error.value)
    log = served[1].read_text()
    assert "Traceback" not in log
    assert len([line for line in log.splitlines() if name in line]) == 2, log[-2000:]


def test_startup_line_is_our_own(client, served: tuple[str, Path]) -> None:
    log = served[1].read_text()
    assert f"Running on {served[0]} (for a public link: python app.py --share)" in log
    assert "share=True" not in log


def test_dropdown_offers_the_models_that_load_now(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17.5: the `--model` directory, the built-in model and the models in the local
    Hub cache (registry repo -> its id, other repos -> hf-hub:), each loadable offline; not
    the registry ids that are not cached, nor cached repos without a runnable file."""
    from huggingface_hub import constants

    import app

    cache = tmp_path / "hub"
    runnable = {name: model_dir / name for name in ("config.json", "model.onnx")}
    fake_hub_cache(cache, "cpg-zoo/lraspp_mbv3_cityscapes_cpg", runnable)
    fake_hub_cache(cache, "someone/street-model", runnable)
    fake_hub_cache(cache, "someone/card-only", {"config.json": model_dir / "config.json"})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    choices = app.model_choices(str(model_dir))
    assert choices == [
        str(model_dir),
        "lraspp_mbv3_synthcity_cpg",
        "lraspp_mbv3_cityscapes_cpg",
        "hf-hub:someone/street-model",
    ]
    for name in choices:
        assert app.MODELS.get(name, "onnx").num_classes == 19, name


def test_about_text_comes_from_the_model_files(model_dir: Path, tmp_path: Path) -> None:
    import app
    import zoo

    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    build = {"description": "Trained on painted toy streets for this test."}
    evaluation = {"split": "val", "metrics": {"mIoU": 0.25}, "build": build}
    (model / "eval.json").write_text(json.dumps(evaluation))
    about = app.describe_model(zoo.load(model, backend="onnx"))
    assert about == (
        "`lraspp_mbv3` trained on **SynthCity** with the `ce` loss; val mIoU 25.0% "
        "(its eval.json). Trained on painted toy streets for this test."
    )


def test_shipped_default_model(tmp_path: Path) -> None:
    assert SHIPPED_MODEL.is_dir(), "build it with: bash scripts/build_default_model.sh"
    for name in ("config.json", "model.onnx", "model.safetensors", "eval.json", "README.md"):
        assert (SHIPPED_MODEL / name).is_file(), name
    process, url = start_app(tmp_path)  # no --model: the built-in default
    try:
        client = gradio_client.Client(url, verbose=False, download_files=str(tmp_path))
        result = segment(client, EXAMPLES[0], "lraspp_mbv3_synthcity_cpg")
        check_result(result, (512, 256))
        assert "lraspp_mbv3_synthcity_cpg" in result[2]
        # The page says what it was trained on, from its own files (not from app.py).
        status = client.predict("lraspp_mbv3_synthcity_cpg", "onnx", api_name="/load_model")
        description = json.loads((SHIPPED_MODEL / "eval.json").read_text())["build"]
        assert "street scenes" in description["description"]
        assert description["description"] in status and "trained on **SynthCity**" in status
    finally:
        stop_app(process)


# ------------------------------------------------------------------ identical answers under load
class SlowCacheWrites:
    """Hook on the write step of Gradio's cache files (`Path.write_bytes` under `cache`): each
    write of `data` (the expected mask PNG) stops halfway, signals `halfway`, and goes on
    when `resume` is set or after `delay` seconds: a slow disk, made deterministic."""

    def __init__(self, cache: Path, data: bytes, delay: float | None = None) -> None:
        import threading

        self.cache, self.data, self.delay = cache.resolve(), data, delay
        self.halfway, self.resume = threading.Event(), threading.Event()
        self.original = Path.write_bytes
        self.count = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> SlowCacheWrites:
        monkeypatch.setattr(Path, "write_bytes", lambda path, data: self.write(path, data))
        return self

    def write(self, path: Path, data: bytes) -> int:
        if data != self.data or not path.resolve().is_relative_to(self.cache):
            return self.original(path, data)
        self.count += 1
        with path.open("wb") as file:
            file.write(data[: len(data) // 2])
            file.flush()
            self.halfway.set()
            self.resume.wait(self.delay if self.delay is not None else 60)
            return file.write(data[len(data) // 2 :])


@pytest.fixture
def local_app(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The demo launched in this process on 127.0.0.1 (so a test can hook its file writes);
    yields (url, Gradio cache dir)."""
    import app

    cache = tmp_path / "gradio"
    for key, value in app_env(tmp_path).items():
        if key.startswith(("HF_", "GRADIO")):
            monkeypatch.setenv(key, value)
    demo = app.build_demo(str(model_dir))
    demo.queue(default_concurrency_limit=app.CONCURRENCY)
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
    )
    yield url, cache
    demo.close()


def expected_mask(model_dir: Path, image: Path) -> tuple[np.ndarray, bytes]:
    """The library's mask of `image` and its palette PNG as the demo encodes it (Gradio's PNG
    encoder), computed in this process without the demo."""
    from gradio.processing_utils import encode_pil_to_bytes

    import zoo

    segmenter = zoo.load(model_dir, backend="onnx")
    ids = segmenter.predict(image)
    return ids, encode_pil_to_bytes(segmenter.mask_image(ids), "png")


def read_mask_png(data: bytes, what: str) -> np.ndarray:
    import io

    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{what}: not a PNG ({len(data)} bytes)"
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return np.asarray(image)
    except OSError as error:
        raise AssertionError(f"{what}: damaged PNG of {len(data)} bytes ({error})") from None


def test_an_answer_is_not_rewritten_while_downloaded(
    local_app, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15.5: a second identical request rewrote the first answer's cache file in place;
    a download in the meantime got an empty or half file."""
    import httpx

    url, cache = local_app
    ids, png = expected_mask(model_dir, EXAMPLES[0])
    first = gradio_client.Client(url, verbose=False, download_files=False)
    answer = first.predict(
        gradio_client.handle_file(str(EXAMPLES[0])), str(model_dir), "onnx", api_name="/segment"
    )[0]
    hook = SlowCacheWrites(cache, png).install(monkeypatch)
    second = gradio_client.Client(url, verbose=False, download_files=False)
    job = second.submit(
        gradio_client.handle_file(str(EXAMPLES[0])), str(model_dir), "onnx", api_name="/segment"
    )
    job.add_done_callback(lambda _: hook.halfway.set())
    assert hook.halfway.wait(60), "the second request neither wrote its mask nor finished"
    try:
        data = httpx.get(answer["url"], timeout=30).content  # while the second one writes
    finally:
        hook.resume.set()
    assert np.array_equal(read_mask_png(data, "first answer"), ids)
    again = httpx.get(job.result(timeout=60)[0]["url"], timeout=30).content
    assert np.array_equal(read_mask_png(again, "second answer"), ids)


def test_concurrent_identical_requests_all_get_the_mask(
    local_app, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """6 clients x 2 identical requests while each cache write takes 0.2 s: every mask file
    returned is a whole PNG equal to the library's mask."""
    from concurrent.futures import ThreadPoolExecutor

    url, cache = local_app
    ids, png = expected_mask(model_dir, EXAMPLES[0])
    SlowCacheWrites(cache, png, delay=0.2).install(monkeypatch)

    def client_run(index: int) -> list[bytes]:
        client = gradio_client.Client(
            url, verbose=False, download_files=str(tmp_path / f"client{index}")
        )
        return [
            Path(
                client.predict(
                    gradio_client.handle_file(str(EXAMPLES[0])),
                    str(model_dir),
                    "onnx",
                    api_name="/segment",
                )[0]
            ).read_bytes()
            for _ in range(2)
        ]

    with ThreadPoolExecutor(6) as pool:
        answers = [data for run in pool.map(client_run, range(6)) for data in run]
    assert len(answers) == 12
    for index, data in enumerate(answers):
        assert np.array_equal(read_mask_png(data, f"answer {index}"), ids), f"answer {index}"


def test_demo_backends_come_from_the_table_and_precision_is_passed(monkeypatch) -> None:
    import torch

    import app
    from zoo.backends import BACKENDS as TABLE

    assert ("auto", *TABLE) == app.BACKENDS and app.parse_args([]).backend == "auto"
    monkeypatch.setattr(app, "PRECISION", "bf16")
    segmenter = app._load_for_demo(app.DEFAULT_MODEL, "torch")
    assert segmenter.backend.dtype == torch.bfloat16
