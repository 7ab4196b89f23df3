"""Gradio demo of the cpg-zoo segmentation models.

    python app.py [--host 127.0.0.1] [--port 7860] [--model NAME]   (or `zoo demo ...`)

Works offline with the model shipped in the package (`zoo/assets/models/`). The dropdown
lists the models that load now (the `--model` one, built-in ones, models in the local Hub
cache); registry ids and `hf-hub:org/repo` ids can be typed and are loaded through `zoo.load`
when reachable. API endpoints: `/segment` (image, model, backend) -> class-id mask PNG, class
shares, info text; `/load_model` (model, backend) -> status text.
`import app` builds nothing and starts no server.
"""

from __future__ import annotations

import os

# No telemetry: must be set before gradio (and huggingface_hub) are imported.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse
import logging
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
from gradio import processing_utils
from PIL import Image, UnidentifiedImageError

import zoo
from zoo.availability import DEFAULT_MODEL, PACKAGED_MODELS_DIR, cached_hub_models, packaged_models
from zoo.backends import BACKENDS as BACKEND_TABLE
from zoo.backends import PRECISION_CHOICES
from zoo.cli_errors import fail
from zoo.errors import ModelFileError, ModelNotAvailableError
from zoo.eval_record import describe_model
from zoo.fileio import write_bytes_atomic
from zoo.hubname import is_hub_name
from zoo.model_cache import SegmenterCache
from zoo.preprocess import pil_to_rgb, resize_rgb, scaled_size
from zoo.registry import MODELS as REGISTRY

ASSETS = Path(str(files("zoo"))) / "assets"
MODELS_DIR = PACKAGED_MODELS_DIR
EXAMPLES_DIR = ASSETS / "examples"
# "auto": the fastest path that passes its accuracy gate (zoo.load's default), then each row
# of the backend table
BACKENDS = ("auto", *BACKEND_TABLE)
PRECISION = "auto"  # precision of every load (`zoo demo --precision`; bf16/fp16 on a GPU)
MAX_SIDE = 2048  # longer inputs are downscaled (with a note) before segmentation
MAX_PIXELS = 50_000_000  # refuse decoding anything larger (decompression bombs)
MAX_FILE_SIZE = "20mb"
CONCURRENCY = 2  # simultaneous inferences (the rest wait in the queue)
QUEUE_SIZE = 64
MODEL_CACHE_SIZE = 3
SESSIONS_KEPT = 500  # Gradio keeps ~0.1 MB per browser/API session; the oldest go first
SHARE_HEADERS = ["id", "class", "share %"]
UNREADABLE = "not a known image format, or a damaged file (try PNG, JPEG, WebP, BMP or TIFF)."
logger = logging.getLogger("zoo.demo")


def visitor_error(message: str) -> gr.Error:
    """A one-line error for the visitor; the server log gets one line too, no traceback."""
    line = " ".join(message.split())
    logger.warning("visitor error: %s", line)
    return gr.Error(line, print_exception=False)


# ------------------------------------------------------------------------------- cache files
def save_pil_to_cache_atomically(
    img: Image.Image, cache_dir: str, name: str = "image", format: str = "webp"
) -> str:
    """Gradio's `processing_utils.save_pil_to_cache` (same content-hash path), written
    atomically. Gradio 6.31 rewrites that file in place, so an identical answer computed at
    the same time truncated the file while another client downloaded it (issue 15.5)."""
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(parents=True, exist_ok=True)
    target = (folder / f"{name}.{format}").resolve()
    try:
        if target.stat().st_size == len(data):  # the same answer, already written whole
            os.utime(target)  # Gradio's delete_cache ages files by ctime
            return str(target)
    except OSError:  # absent (or just deleted): write it
        pass
    write_bytes_atomic(target, data, fsync=False)  # a cache: atomic for readers is enough
    return str(target)


def use_atomic_cache_writes() -> None:
    """Route Gradio's image cache writes (the mask, the overlay's image and layers) through
    `save_pil_to_cache_atomically`; its other cache writers already write atomically."""
    processing_utils.save_pil_to_cache = save_pil_to_cache_atomically


# ------------------------------------------------------------------------------- models
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


def describe_runtime(segmenter: zoo.Segmenter) -> str:
    """'onnx on CPU (CPUExecutionProvider)' / 'torch on GPU (torch:cuda)'."""
    where = "GPU" if segmenter.device.startswith("cuda") else "CPU"
    return f"`{segmenter.backend_name}` on **{where}** ({', '.join(segmenter.providers)})"


def load_model(name: str, backend: str) -> str:
    """Load (or reuse) a model; a status line for the page, with a warning if unavailable."""
    try:
        segmenter = get_segmenter(name, backend)
    except gr.Error as error:
        gr.Warning(error.message)
        return f"**Model not available:** {error.message}"
    return (
        f"Model `{name}` ready: {describe_runtime(segmenter)}, {segmenter.num_classes} classes."
        f"\n\n**About:** {describe_model(segmenter)}"
    )


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


def is_allowed_model(name: str) -> bool:
    """Listed models, registry ids and Hub ids: visitors must not open arbitrary server paths."""
    return name in _ALLOWED or name in REGISTRY or is_hub_name(name)


def model_choices(default_model: str) -> list[str]:
    """The dropdown: the models that load now. The default (maybe a `--model` directory)
    first, then the built-in ones and the cached Hub models."""
    return list(dict.fromkeys([default_model, *packaged_models(), *cached_hub_models()]))


# ------------------------------------------------------------------------------- images
def read_upload(path: str | None) -> tuple[np.ndarray, str]:
    """An uploaded file -> (RGB uint8 HxWx3, note); gr.Error for anything unreadable."""
    if not path:
        raise visitor_error("Upload an image first (or pick an example).")
    name = Path(path).name
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise visitor_error(
                    f"{name}: {width}x{height} is {width * height / 1e6:.0f} megapixels; "
                    f"the demo accepts up to {MAX_PIXELS / 1e6:.0f}."
                )
            image.load()
            rgb = pil_to_rgb(image)
    except gr.Error:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise visitor_error(f"{name} is not a readable image: {UNREADABLE}") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise visitor_error(f"{name} could not be decoded as an image: {error}") from None
    height, width = rgb.shape[:2]
    if max(height, width) <= MAX_SIDE:
        return rgb, ""
    size = scaled_size(height, width, MAX_SIDE)
    note = (
        f"Resized from {width}x{height} to {size[1]}x{size[0]} "
        f"(the demo's limit is {MAX_SIDE} px per side)."
    )
    return resize_rgb(rgb, size), note


def checked_image(**kwargs: Any) -> gr.Image:
    """A `gr.Image` whose unreadable uploads raise a `gr.Error` naming the file, instead of
    PIL's exception (which Gradio would hide behind a generic message). The check wraps the
    instance's `preprocess`: a `gr.Image` subclass would make Gradio write an `app.pyi`."""
    image = gr.Image(**kwargs)
    preprocess = image.preprocess

    def checked(payload: Any) -> Any:
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Exception:  # PIL raises many types for non-images
            name = getattr(payload, "orig_name", None) or "the upload"
            raise visitor_error(f"{name} is not a readable image: {UNREADABLE}") from None

    image.preprocess = checked
    return image


# ------------------------------------------------------------------------------- output
def hex_color(rgb: np.ndarray) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))


def annotated(
    rgb: np.ndarray, mask: np.ndarray, segmenter: zoo.Segmenter, opacity: float
) -> gr.AnnotatedImage:
    """The AnnotatedImage of a result: one layer per class present (largest first), coloured
    by the model's palette."""
    classes, palette = segmenter.classes, segmenter.palette
    present, counts = np.unique(mask, return_counts=True)
    ids = [int(i) for i in present[np.argsort(-counts, kind="stable")] if i < len(classes)]
    layers = [((mask == i).astype(np.float32) * opacity, classes[i]) for i in ids]
    colors = {classes[i]: hex_color(palette[i]) for i in ids}
    return gr.AnnotatedImage(value=(rgb, layers), color_map=colors)


def class_shares(mask: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Pixel share (%) of each class present, largest first."""
    counts = np.bincount(mask.ravel(), minlength=len(classes))
    rows = [
        (i, classes[i] if i < len(classes) else f"id {i}", round(100.0 * n / mask.size, 2))
        for i, n in enumerate(counts)
        if n
    ]
    rows.sort(key=lambda row: -row[2])
    return pd.DataFrame(rows, columns=SHARE_HEADERS)


def segment(
    image: str | None, model: str, backend: str
) -> tuple[Image.Image, pd.DataFrame, str, tuple[str, str]]:
    """Segment one image: class-id mask (palette PNG), class shares, info text (timing,
    device, resize note), and the (model, backend) that made the mask."""
    rgb, note = read_upload(image)
    segmenter = get_segmenter(model, backend)
    start = time.perf_counter()
    try:
        mask = segmenter.predict(rgb)
    except (ValueError, RuntimeError) as error:
        raise visitor_error(f"Segmentation failed: {error}") from None
    seconds = time.perf_counter() - start
    height, width = mask.shape
    info = (
        f"**Inference:** {seconds * 1000:.0f} ms for {width}x{height} px with `{model}`, "
        f"{describe_runtime(segmenter)}."
    )
    if note:
        info += f"\n\n**Note:** {note}"
    shares = class_shares(mask, segmenter.classes)
    return segmenter.mask_image(mask), shares, info, (model, backend)


def draw_overlay(
    image: str | None, mask: Image.Image | None, made_by: tuple[str, str] | None, opacity: float
) -> gr.AnnotatedImage:
    """The overlay of the shown mask on its image at `opacity` (no new inference; nothing is
    kept on the server between calls)."""
    if image is None or mask is None or not made_by:
        return gr.AnnotatedImage(value=None)
    rgb, _ = read_upload(image)
    ids = np.asarray(mask)
    if ids.shape != rgb.shape[:2]:  # the image changed since; its own result is on its way
        return gr.skip()
    return annotated(rgb, ids, get_segmenter(*made_by), opacity)


# ------------------------------------------------------------------------------- UI
def build_demo(default_model: str = DEFAULT_MODEL) -> gr.Blocks:
    """The demo's Blocks (not launched): input, model and backend choice, outputs."""
    use_atomic_cache_writes()
    choices = model_choices(default_model)
    _ALLOWED.update(choices)
    examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.png"))
    with gr.Blocks(title="cpg-zoo segmentation demo", analytics_enabled=False) as demo:
        gr.Markdown(
            "# cpg-zoo: semantic segmentation\n"
            "Models trained with the CPG boundary loss ([arXiv 2404.06704]"
            "(https://arxiv.org/abs/2404.06704)). Upload or paste an image, or pick an example."
        )
        with gr.Row():
            with gr.Column():
                image = checked_image(
                    label="Image",
                    type="filepath",
                    image_mode=None,  # keep the file as uploaded; the app reads any mode
                    sources=["upload", "clipboard"],
                    height=360,
                    elem_id="input-image",
                )
                model = gr.Dropdown(
                    choices,
                    value=default_model,
                    label="Model",
                    info="models that load now; or type a registry id or hf-hub:org/repo",
                    allow_custom_value=True,
                )
                with gr.Row():
                    backend = gr.Radio(list(BACKENDS), value="auto", label="Backend")
                    opacity = gr.Slider(0.0, 1.0, value=0.6, step=0.05, label="Mask opacity")
                status = gr.Markdown("Loading the model ...", label="Status", elem_id="status")
                run = gr.Button("Segment", variant="primary", elem_id="segment")
                if examples:
                    gr.Examples(examples, inputs=image, label="SynthCity examples")
            with gr.Column():
                with gr.Tabs():
                    with gr.Tab("Overlay"):
                        overlay = gr.AnnotatedImage(
                            label="Segmentation", format="jpeg", height=360, elem_id="overlay"
                        )
                    with gr.Tab("Mask"):
                        mask = gr.Image(
                            label="Mask",  # a palette PNG: pixel value = class id
                            elem_id="mask",
                            interactive=False,  # an output (also read back by draw_overlay)
                            type="pil",
                            format="png",
                            image_mode=None,
                            height=360,
                        )
                info = gr.Markdown(label="Info", elem_id="info")
                shares = gr.Dataframe(
                    headers=SHARE_HEADERS,
                    datatype=["number", "str", "number"],
                    label="Class shares",
                    interactive=False,
                    elem_id="shares",
                )
        made_by = gr.State()  # (model, backend) of the mask shown

        gr.on(
            [run.click, image.upload],
            segment,
            inputs=[image, model, backend],
            outputs=[mask, shares, info, made_by],
            api_name="segment",
        ).success(
            draw_overlay,
            inputs=[image, mask, made_by, opacity],
            outputs=overlay,
            api_visibility="private",
        )
        gr.on(
            [demo.load, model.change, backend.change],
            load_model,
            inputs=[model, backend],
            outputs=status,
            api_name="load_model",
        )
        opacity.release(
            draw_overlay,
            inputs=[image, mask, made_by, opacity],
            outputs=overlay,
            api_visibility="private",
        )
    return demo


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="zoo demo", description="Gradio segmentation demo.")
    parser.add_argument("--host", default="127.0.0.1", help="interface (0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"default model: registry id, hf-hub:org/repo or model directory ({DEFAULT_MODEL})",
    )
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="to preload")
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="of every model loaded (auto: gated choice; fp16/bf16 with --backend torch on a GPU)",
    )
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--share", action="store_true", help="public gradio.live link (off)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Load the default model, then serve the demo until interrupted; returns an exit code."""
    args = parse_args(argv)
    global PRECISION
    PRECISION = args.precision
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    _ALLOWED.add(args.model)
    try:
        segmenter = get_segmenter(args.model, args.backend)
    except gr.Error as error:
        return fail("zoo demo", f"cannot load the model: {error.message}", code=2)
    print(f"model {args.model}: {segmenter!r}")
    demo = build_demo(args.model)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=QUEUE_SIZE)
    _, local_url, share_url = demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        quiet=True,  # no "set `share=True` in `launch()`": our own lines below
        prevent_thread_lock=True,
        max_file_size=MAX_FILE_SIZE,
        allowed_paths=[str(EXAMPLES_DIR)],
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
        run_history=False,  # no run records (nor their optional upload to a Hub bucket)
        state_session_capacity=SESSIONS_KEPT,
        footer_links=["api", "settings"],
    )
    print(startup_message(local_url, share_url), flush=True)
    demo.block_thread()
    return 0


def startup_message(local_url: str, share_url: str | None) -> str:
    """Where the demo is served, and how to get a public link."""
    if share_url:
        return f"Running on {local_url} and on the public link {share_url}"
    return f"Running on {local_url} (for a public link: python app.py --share)"


if __name__ == "__main__":
    raise SystemExit(main())
