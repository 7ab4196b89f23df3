"""Gradio demo of the cpg-zoo segmentation models: the entry point, the page and the CLI.

    python app.py [--host 127.0.0.1] [--port 7860] [--model NAME]   (or `zoo demo ...`)

Works offline with the model shipped in the package (`zoo/assets/models/`). The dropdown
lists the models that load now (the `--model` one, built-in ones, models in the local Hub
cache); registry ids and `hf-hub:org/repo` ids can be typed and are loaded through `zoo.load`
when reachable. API endpoints: `/segment` (image, model, backend) -> class-id mask PNG, class
shares, info text; `/load_model` (model, backend) -> status text. The parts live in the
`demo` package, one concept a module.
`import app` builds nothing and starts no server.
"""

from __future__ import annotations

# First: importing the demo package switches Gradio's and the Hub's telemetry off before
# either is imported.
import demo  # noqa: F401

# isort: split
import argparse
import logging
from importlib.resources import files
from pathlib import Path

import gradio as gr

from demo.cache import use_atomic_cache_writes
from demo.errors import logger
from demo.handlers import draw_overlay, load_model, segment
from demo.models import BACKENDS, allow_models, get_segmenter, model_choices, set_precision
from demo.present import SHARE_HEADERS
from demo.uploads import checked_image
from zoo.availability import DEFAULT_MODEL
from zoo.backends import PRECISION_CHOICES
from zoo.cli_errors import error_line, fail, int_in

ASSETS = Path(str(files("zoo"))) / "assets"
EXAMPLES_DIR = ASSETS / "examples"
MAX_FILE_SIZE = "20mb"
CONCURRENCY = 2  # simultaneous inferences (the rest wait in the queue)
QUEUE_SIZE = 64
SESSIONS_KEPT = 500  # Gradio keeps ~0.1 MB per browser/API session; the oldest go first


def build_demo(default_model: str = DEFAULT_MODEL) -> gr.Blocks:
    """The demo's Blocks (not launched): input, model and backend choice, outputs."""
    use_atomic_cache_writes()
    choices = model_choices(default_model)
    allow_models(choices)
    examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.png"))
    with gr.Blocks(title="cpg-zoo segmentation demo", analytics_enabled=False) as blocks:
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
            [blocks.load, model.change, backend.change],
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
    return blocks


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="zoo demo", description="Gradio segmentation demo.")
    parser.add_argument("--host", default="127.0.0.1", help="interface (0.0.0.0 for all)")
    parser.add_argument("--port", type=int_in(1, 65535), default=7860)
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
    parser.add_argument(
        "--concurrency",
        type=int_in(1),
        default=CONCURRENCY,
        help=f"simultaneous inferences, the rest wait in the queue (default {CONCURRENCY})",
    )
    parser.add_argument("--share", action="store_true", help="public gradio.live link (off)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Load the default model, then serve the demo until interrupted; returns an exit code."""
    args = parse_args(argv)
    set_precision(args.precision)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    allow_models([args.model])
    try:
        segmenter = get_segmenter(args.model, args.backend)
    except gr.Error as error:
        return fail("zoo demo", f"cannot load the model: {error.message}", code=2)
    print(f"model {args.model}: {segmenter!r}")
    blocks = build_demo(args.model)
    blocks.queue(default_concurrency_limit=args.concurrency, max_size=QUEUE_SIZE)
    try:
        _, local_url, share_url = blocks.launch(
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
    except OSError as error:  # port in use, address not of this machine
        return fail(
            "zoo demo",
            f"cannot serve on {args.host}:{args.port}: {error_line(error).split('. ')[0]} (the "
            "port is in use, or the host is not an address of this machine; choose another "
            "with --port / --host)",
            code=2,
        )
    print(startup_message(local_url, share_url), flush=True)
    blocks.block_thread()
    return 0


def startup_message(local_url: str, share_url: str | None) -> str:
    """Where the demo is served, and how to get a public link."""
    if share_url:
        return f"Running on {local_url} and on the public link {share_url}"
    return f"Running on {local_url} (for a public link: python app.py --share)"


if __name__ == "__main__":
    raise SystemExit(main())
