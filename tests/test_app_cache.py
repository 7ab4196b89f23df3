"""The demo's image cache writes (Gradio's `save_pil_to_cache`, replaced by an atomic one), and
identical answers under load from the demo launched in this process."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from helpers_app import EXAMPLES, build_test_model
from PIL import Image

from bench.app_server import app_env, free_port

demo_cache = pytest.importorskip("demo.cache", reason="the demo extra (gradio) is not installed")
gradio_client = pytest.importorskip("gradio_client")  # a dependency of gradio


def test_cache_write_is_whole_readable_and_reused(tmp_path: Path) -> None:
    image = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    first = Path(demo_cache.save_pil_to_cache_atomically(image, str(tmp_path), format="png"))
    again = Path(demo_cache.save_pil_to_cache_atomically(image, str(tmp_path), format="png"))
    (tmp_path / "plain.txt").write_text("")  # the mode `open()` gives in this process
    assert again == first and first.name == "image.png"
    with Image.open(io.BytesIO(first.read_bytes())) as decoded:
        assert np.array_equal(np.asarray(decoded), np.asarray(image))
    plain_mode = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert first.stat().st_mode & 0o777 == plain_mode  # not mkstemp's 0600
    assert [p.name for p in first.parent.iterdir()] == ["image.png"]  # no temp files left


# ------------------------------------------------------------------ identical answers under load
@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_model(tmp_path_factory.getbasetemp())


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
