"""`zoo predict INPUT... --model NAME`: segment files, folders and globs in batch.

Writes one palette PNG per image (mode "P" with the model's palette, `<stem>.png`, the
relative folder structure of each folder/glob argument kept under `--out`) and, with
`--overlay`, `<stem>_overlay.jpg` (or `.png` with `--overlay-format png`). Images are decoded
by a thread pool ahead of the model and outputs are encoded and written (atomically) by
another, so reading, inference and writing overlap. Unreadable files, and images over
`--max-pixels` (default 50 MP, checked from the file header before decoding), are reported on
stderr and skipped; the exit code is then 1 (2 for a usage or model error).

Output names: `<relative path without suffix>.png`, made unique (`zoo.predict_inputs`). Images
whose longer side exceeds `--max-side` are processed downscaled (JPEGs are decoded at reduced
scale) and their masks upsampled to the full size; a note says how many and by how much (`-v`:
each one); `--max-side 0` processes at full size.
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from zoo.availability import DEFAULT_MODEL
from zoo.backends import BACKEND_CHOICES, PRECISION_CHOICES
from zoo.cli_errors import USER_ERRORS, error_line, fail, only_with
from zoo.errors import BatchPredictionError
from zoo.fileio import write_bytes_atomic
from zoo.predict_inputs import Job, collect_inputs
from zoo.preprocess import (
    MAX_IMAGE_PIXELS,
    DecodedImage,
    open_image,
    scaled_size,
)
from zoo.segmenter import Segmenter
from zoo.selection import GATES

EXIT_OK, EXIT_SOME_FAILED, EXIT_ERROR = 0, 1, 2
PROG = "zoo predict"
# What a failed load raises for bad input; RuntimeError: ONNX Runtime's load errors.
LOAD_ERRORS: tuple[type[BaseException], ...] = (*USER_ERRORS, RuntimeError)


def _encode(image: object, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, fmt, quality=90)  # type: ignore[attr-defined]
    else:
        image.save(buffer, fmt)  # type: ignore[attr-defined]
    return buffer.getvalue()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo predict",
        description="Segment images with a zoo model; writes palette PNG masks.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, globs")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="model directory, registry id or hf-hub:org/repo[@rev] (default: the built-in "
        f"{DEFAULT_MODEL}, offline; `zoo list` shows what loads)",
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKEND_CHOICES,
        help="auto (default): on a CPU the fastest installed path that meets its accuracy gate "
        "(-v says which and why)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES)
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=None,
        help="accept a reduced precision whose recorded agreement with fp32 is at least this "
        "fraction, e.g. 0.97 (default: the gates of zoo.selection, "
        + ", ".join(f"{name} {gate}" for name, gate in GATES.items())
        + ")",
    )
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag, commit)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("predictions"),
        help="output folder: <name>.png per input; a name taken by an earlier input "
        "(a.jpg, a.png) gets the input's suffix (a_png.png)",
    )
    parser.add_argument("--overlay", action="store_true", help="also write <stem>_overlay")
    parser.add_argument(
        "--overlay-format", choices=["jpg", "png"], help="with --overlay (default jpg)"
    )
    parser.add_argument(
        "--alpha", type=float, help="with --overlay: the mask's weight, 0-1 (default 0.5)"
    )
    parser.add_argument("--batch-size", type=int, default=1, help="images per model call")
    parser.add_argument(
        "--max-side",
        type=int,
        default=None,
        help="downscale inputs whose longer side exceeds this (default 1024 in whole mode, "
        "full resolution in slide mode; 0 = full resolution)",
    )
    parser.add_argument("--mode", default="whole", choices=["whole", "slide"])
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=MAX_IMAGE_PIXELS,
        help=f"skip images with more pixels, read from the header before decoding (default "
        f"{MAX_IMAGE_PIXELS:_}; 0 = no limit)",
    )
    parser.add_argument("--workers", type=int, default=2, help="decoding/writing threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the model's provenance (directory, Hub commit) and each downscaled image",
    )
    return parser


def _prefetch(
    pool: ThreadPoolExecutor,
    jobs: list[Job],
    depth: int,
    max_pixels: int | None,
    reduce_to: int | None,
) -> Iterator[tuple[Job, Future[DecodedImage]]]:
    """Yield (job, future decoded image) keeping `depth` decodes in flight ahead."""
    queue: deque[tuple[Job, Future[DecodedImage]]] = deque()
    for job in jobs:
        queue.append((job, pool.submit(open_image, job.path, max_pixels, reduce_to)))
        if len(queue) > depth:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `zoo predict`; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.batch_size < 1 or args.workers < 1:
        return fail(PROG, "--batch-size and --workers must be >= 1", EXIT_ERROR)
    if args.max_side is not None and args.max_side < 0:
        return fail(PROG, "--max-side must be >= 0", EXIT_ERROR)
    if args.max_pixels < 0:
        return fail(PROG, "--max-pixels must be >= 0 (0 = no limit)", EXIT_ERROR)
    stray = only_with("--overlay", {"--alpha": args.alpha, "--overlay-format": args.overlay_format})
    if stray and not args.overlay:
        return fail(PROG, stray, EXIT_ERROR)
    args.alpha = 0.5 if args.alpha is None else args.alpha
    args.overlay_format = args.overlay_format or "jpg"
    if not 0.0 <= args.alpha <= 1.0:
        return fail(PROG, f"--alpha must be in [0, 1], got {args.alpha}", EXIT_ERROR)
    out_dir: Path = args.out
    existing = next((p for p in (out_dir, *out_dir.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        return fail(PROG, f"--out {out_dir}: {existing} is a file, not a folder", EXIT_ERROR)
    png_overlays = args.overlay and args.overlay_format == "png"
    jobs, problems = collect_inputs(args.inputs, exclude=out_dir, png_overlays=png_overlays)
    for message in problems:
        print(f"zoo predict: {message}", file=sys.stderr)
    if not jobs:
        return fail(PROG, "nothing to do (no input images)", EXIT_ERROR)

    from zoo.loading import load
    from zoo.predict_options import AUTO

    try:
        segmenter = load(
            args.model,
            backend=args.backend,
            device=args.device,
            revision=args.revision,
            precision=args.precision,
            min_agreement=args.min_agreement,
            mode=args.mode,
            max_side=AUTO if args.max_side is None else args.max_side,
            batch_size=args.batch_size,
            max_pixels=args.max_pixels or None,
        )
    except LOAD_ERRORS as error:
        return fail(PROG, f"cannot load model {args.model!r}: {error_line(error)}", EXIT_ERROR)
    if not args.quiet:
        print(
            f"zoo predict: {len(jobs)} image(s) with {segmenter!r} on {segmenter.providers}",
            file=sys.stderr,
        )
    if args.verbose:
        print(f"zoo predict: {provenance(segmenter)}", file=sys.stderr)
        print(f"zoo predict: path {segmenter.selection}", file=sys.stderr)
    max_side = segmenter.resolved_max_side()
    downscaled: list[float] = []  # the scale factor of each downscaled image

    failures = 0
    progress = tqdm(total=len(jobs), unit="img", desc="predict", disable=args.quiet)
    overlay_suffix = "_overlay." + args.overlay_format
    overlay_format = "JPEG" if args.overlay_format == "jpg" else "PNG"

    def note_scale(job: Job, size: tuple[int, int]) -> None:
        if max_side is None or max(size) <= max_side:
            return
        downscaled.append(max_side / max(size))
        if args.verbose:
            height, width = scaled_size(*size, max_side)
            progress.write(
                f"zoo predict: {job.path}: {size[1]}x{size[0]} processed at {width}x{height} "
                f"({downscaled[-1]:.0%}); the mask is written at {size[1]}x{size[0]}",
                file=sys.stderr,
            )

    def write(job: Job, rgb: np.ndarray, mask: np.ndarray) -> None:
        target = out_dir / job.relative
        write_bytes_atomic(
            target.with_name(target.name + ".png"), _encode(segmenter.mask_image(mask), "PNG")
        )
        if args.overlay:
            blended = Image.fromarray(segmenter.overlay(rgb, mask, alpha=args.alpha))
            write_bytes_atomic(
                target.with_name(target.name + overlay_suffix), _encode(blended, overlay_format)
            )

    def report(job: Job, error: BaseException) -> None:
        nonlocal failures
        failures += 1
        text = str(error)
        where = "" if str(job.path) in text else f" {job.path}"  # name the file once
        progress.write(f"zoo predict: skipped{where}: {text}", file=sys.stderr)

    with (
        warnings.catch_warnings(),
        ThreadPoolExecutor(args.workers, thread_name_prefix="decode") as readers,
        ThreadPoolExecutor(args.workers, thread_name_prefix="write") as writers,
    ):
        if args.max_pixels and args.max_pixels <= Image.MAX_IMAGE_PIXELS:
            # PIL warns from the header of images that --max-pixels refuses anyway.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        writes: deque[tuple[Job, Future[None]]] = deque()

        def drain(limit: int) -> None:
            while len(writes) > limit:
                job, future = writes.popleft()
                try:
                    future.result()
                except Exception as error:  # disk full, permissions: report, go on
                    report(job, error)
                progress.update(1)

        def flush(batch: list[tuple[Job, DecodedImage]]) -> None:
            masks: list[np.ndarray | None]
            try:
                masks = list(
                    segmenter.predict([image for _, image in batch], batch_size=args.batch_size)
                )
            except BatchPredictionError as error:  # write the others, report the failed ones
                masks = error.results
                for index, failure in error.errors.items():
                    report(batch[index][0], failure)
                    progress.update(1)
            except (ValueError, RuntimeError) as error:
                for job, _ in batch:
                    report(job, error)
                    progress.update(1)
                return
            for (job, image), mask in zip(batch, masks, strict=True):
                if mask is not None:
                    note_scale(job, image.size)
                    writes.append((job, writers.submit(write, job, image.rgb, mask)))
            drain(2 * args.workers)

        batch: list[tuple[Job, DecodedImage]] = []
        depth = args.batch_size + 2 * args.workers
        # Overlays need the full-size pixels; masks alone can come from a reduced JPEG decode.
        reduce_to = None if args.overlay else max_side
        for job, decoded in _prefetch(readers, jobs, depth, args.max_pixels or None, reduce_to):
            try:
                batch.append((job, decoded.result()))
            except (ValueError, OSError) as error:
                report(job, error)
                progress.update(1)
                continue
            if len(batch) == args.batch_size:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
        drain(0)
    progress.close()
    if downscaled and not args.quiet:
        low, high = f"{min(downscaled):.0%}", f"{max(downscaled):.0%}"
        print(
            f"zoo predict: {len(downscaled)} image(s) were downscaled to a longer side of "
            f"{max_side} px for the model (to {low if low == high else f'{low}-{high}'} of "
            "their size; masks are written at full size); --max-side 0 processes at full size",
            file=sys.stderr,
        )
    if failures or problems:
        print(
            f"zoo predict: {len(jobs) - failures} of {len(jobs)} image(s) written to "
            f"{out_dir}; {failures + len(problems)} problem(s), see above",
            file=sys.stderr,
        )
        return EXIT_SOME_FAILED
    if not args.quiet:
        print(f"zoo predict: {len(jobs)} image(s) written to {out_dir}", file=sys.stderr)
    return EXIT_OK


def provenance(segmenter: Segmenter) -> str:
    """Where a loaded model's files come from: name, Hub commit and directory."""
    text = f"model {segmenter.source or segmenter.config.model_id}"
    if segmenter.revision:
        text += f" at Hub commit {segmenter.revision}"
    return f"{text} ({segmenter.precision}, files in {segmenter.model_dir})"


if __name__ == "__main__":
    sys.exit(main())
