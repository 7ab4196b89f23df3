"""`Segmenter`: images in, class-id masks out, on any backend.

Masks are HxW at the input's resolution (after EXIF rotation) with dtype `uint8` when the
model has at most 255 classes (ids 0..254, so 255 stays free for "ignore"), else `int32`.

Resize policy (`mode`, `max_side`):
- `mode="whole"` (default): the whole image in one pass; when its longer side exceeds
  `max_side` (default `zoo.predict_options.DEFAULT_MAX_SIDE` = 1024) it is downscaled first
  and the logits are upsampled back bilinearly. `max_side=None` (or 0) runs at full resolution.
- `mode="slide"`: windows of the config's `input_size` (e.g. 512x1024 for Cityscapes) with
  1/3 overlap, logits averaged over overlaps; full resolution unless `max_side` is given.

Size limit (`max_pixels`, default `zoo.preprocess.MAX_IMAGE_PIXELS` = 50 MP, as the demo): a
larger image raises `ImageTooLargeError` (a ValueError) read from the file header, before
anything is decoded; `max_pixels=None` lifts it. JPEG files that will be downscaled are decoded
at reduced scale (`zoo.preprocess.open_image`). A list with unusable images raises
`zoo.errors.BatchPredictionError` carrying the results of the others.

Test-time augmentation (`tta=zoo.tta.TTA(scales, flip)`): the processed image is run at each
scale (and mirrored), the logits resized back to it and averaged, on every backend and mode.

Where the backend has in-graph pre/post-processing (`backend.pixels`, `zoo.ingraph`: ONNX
Runtime, OpenVINO) images go in as uint8 and, when the logits need no resize (the image runs at
its own size, `mode="whole"`), `predict` gets class ids and `predict_proba` probabilities from
the graph: no float work in numpy. Otherwise the graph gives logits, resized here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np
from PIL import Image

from zoo import preprocess, visualize
from zoo.errors import BatchPredictionError
from zoo.predict_options import (
    AUTO,
    Auto,
    check_batch_size,
    check_max_pixels,
    check_mode,
    resolve_max_side,
)
from zoo.preprocess import MAX_IMAGE_PIXELS, ImageInput
from zoo.sliding import slide_logits
from zoo.tta import TTA, check_tta, tta_logits

if TYPE_CHECKING:
    from zoo.backends import Backend
    from zoo.config import ModelConfig

# What makes one image of a list unusable (the others still run): missing, unreadable, too
# large, or not an image at all.
PER_IMAGE_ERRORS: Final = (OSError, ValueError, TypeError)


class Segmenter:
    """A loaded model: `predict`, `predict_proba`, `colorize`, `overlay`.

    Thread-safe: `predict` keeps no state between calls, and both backends allow concurrent
    runs.
    """

    def __init__(
        self,
        backend: Backend,
        config: ModelConfig,
        model_dir: str | Path | None = None,
        *,
        mode: str = "whole",
        max_side: int | Auto | None = AUTO,
        batch_size: int = 1,
        max_pixels: int | None = MAX_IMAGE_PIXELS,
        precision: str = "fp32",
        source: str | None = None,
        revision: str | None = None,
        selection: str | None = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.mode = check_mode(mode)
        self.max_side = max_side
        self.batch_size = check_batch_size(batch_size)
        self.max_pixels = check_max_pixels(max_pixels)
        self.precision = precision
        self.source = source  # the name it was loaded by (registry id, hf-hub:..., directory)
        self.revision = revision  # the Hub commit sha of the files, for Hub loads
        self.selection = selection  # which backend/precision `zoo.load` took and why
        self.mask_dtype = np.dtype(np.uint8 if config.num_classes <= 255 else np.int32)
        self._lut = visualize.palette_lut(config.palette, config.num_classes)

    # ---------------------------------------------------------------- properties
    @property
    def classes(self) -> list[str]:
        """Class names, indexed by class id."""
        return list(self.config.classes)

    @property
    def palette(self) -> np.ndarray:
        """(num_classes, 3) uint8 RGB colours, indexed by class id."""
        return self._lut[: self.config.num_classes].copy()

    @property
    def num_classes(self) -> int:
        """Number of classes the model predicts."""
        return self.config.num_classes

    @property
    def providers(self) -> list[str]:
        """ONNX Runtime providers actually in use (`session.get_providers()`),
        `["OpenVINO:CPU:<precision hint>"]` or `["torch:<device>"]`; `selection` says why."""
        return list(self.backend.providers)

    @property
    def device(self) -> str:
        """Where inference really runs: "cpu" or "cuda"."""
        return self.backend.device

    @property
    def backend_name(self) -> str:
        """Backend name: a key of `zoo.backends.BACKENDS` ("onnx", "openvino", "torch")."""
        return self.backend.name

    def __repr__(self) -> str:
        name = (
            self.source or self.config.model_id or (str(self.model_dir) if self.model_dir else "?")
        )
        parts = [repr(name)]
        if self.revision:
            parts.append(f"revision={self.revision!r}")
        if self.model_dir is not None and str(self.model_dir) != name:
            parts.append(f"model_dir={str(self.model_dir)!r}")
        parts += [
            f"backend={self.backend_name!r}",
            f"precision={self.precision!r}",
            f"device={self.device!r}",
            f"classes={self.num_classes}",
            f"mode={self.mode!r}",
        ]
        return f"Segmenter({', '.join(parts)})"

    # ---------------------------------------------------------------- prediction
    def predict(
        self,
        image: ImageInput | Sequence[ImageInput],
        batch_size: int | None = None,
        *,
        mode: str | None = None,
        max_side: int | Auto | None = AUTO,
        tta: TTA | None = None,
    ) -> np.ndarray | list[np.ndarray]:
        """Class-id mask (HxW) of an image (path, PIL image or uint8 array); a list of images
        gives a list of masks, run `batch_size` at a time (consecutive images of one size).
        `tta` (`zoo.tta.TTA`): multi-scale / flip test-time augmentation, logits averaged.

        A list with unusable images (missing, unreadable, over `max_pixels`) still runs the
        others, then raises `BatchPredictionError` carrying their masks."""

        def mask(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
            return preprocess.argmax_resized(logits, size, self.mask_dtype)

        return self._map(mask, image, batch_size, mode, max_side, output="ids", tta=tta)

    def predict_proba(
        self,
        image: ImageInput | Sequence[ImageInput],
        batch_size: int | None = None,
        *,
        mode: str | None = None,
        max_side: int | Auto | None = AUTO,
        tta: TTA | None = None,
    ) -> np.ndarray | list[np.ndarray]:
        """Class probabilities, float32 CxHxW at the input's resolution (sum to 1 over C); a
        list of images gives a list, run `batch_size` at a time, with `tta`, as `predict`."""

        def proba(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
            return preprocess.softmax(preprocess.resize_logits(logits, size), axis=0)

        return self._map(proba, image, batch_size, mode, max_side, output="probs", tta=tta)

    def predict_logits(
        self,
        image: ImageInput,
        *,
        mode: str | None = None,
        max_side: int | Auto | None = AUTO,
        tta: TTA | None = None,
    ) -> np.ndarray:
        """Raw logits, float32 CxHxW at the resolution the network ran at (before upsampling;
        with `tta`, their mean over the augmented passes at that resolution)."""
        ((logits, _, error, _),) = self._logits([image], None, mode, max_side, tta=tta)
        if error is not None:
            raise error
        return logits

    def resolved_max_side(
        self, mode: str | None = None, max_side: int | Auto | None = AUTO
    ) -> int | None:
        """The longer side images are downscaled to with these settings (None: full size)."""
        return self._resolve(None, mode, max_side)[2]

    def _map(
        self,
        finish: Callable[[np.ndarray, tuple[int, int]], np.ndarray],
        image: ImageInput | Sequence[ImageInput],
        batch_size: int | None,
        mode: str | None,
        max_side: int | Auto | None,
        output: str,
        tta: TTA | None = None,
    ) -> np.ndarray | list[np.ndarray]:
        """`finish(logits, size)` of an image (or the graph's `output` where no resize is
        needed), or the list of them for a list."""

        def result(array: np.ndarray, size: tuple[int, int], done: bool) -> np.ndarray:
            return array if done else finish(array, size)

        if not isinstance(image, list | tuple):
            single = cast(ImageInput, image)  # a str is a Sequence too: one path, not a batch
            ((array, size, error, done),) = self._logits(
                [single], batch_size, mode, max_side, output, tta
            )
            if error is not None:
                raise error
            return result(array, size, done)
        results: list[np.ndarray | None] = []
        errors: dict[int, Exception] = {}
        outputs = self._logits(image, batch_size, mode, max_side, output, tta)
        for index, (array, size, error, done) in enumerate(outputs):
            results.append(None if error is not None else result(array, size, done))
            if error is not None:
                errors[index] = error
        if errors:
            raise BatchPredictionError(results, errors)
        return results  # type: ignore[return-value]

    def _resolve(
        self, batch_size: int | None, mode: str | None, max_side: int | Auto | None
    ) -> tuple[int, str, int | None]:
        batch_size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        mode = self.mode if mode is None else check_mode(mode)
        return batch_size, mode, resolve_max_side(max_side, self.max_side, mode)

    def _logits(
        self,
        images: Sequence[ImageInput],
        batch_size: int | None,
        mode: str | None,
        max_side: int | Auto | None,
        output: str = "logits",
        tta: TTA | None = None,
    ) -> Iterator[tuple[Any, Any, Exception | None, bool]]:
        """Per image, in order: (CxhxW logits at the processing size, original (H, W), None,
        False), or (the graph's `output` at the original size, (H, W), None, True) where the
        backend computes it and nothing needs resizing; (None, None, the exception, False) for
        an image that could not be read."""
        batch_size, mode, max_side = self._resolve(batch_size, mode, max_side)
        tta = check_tta(tta)
        in_graph = output != "logits" and getattr(self.backend, "pixels", None) is not None
        pending: list[np.ndarray] = []
        sizes: list[tuple[int, int]] = []
        direct = False  # whether the pending images get `output` from the graph

        def run_pending() -> Iterator[tuple[Any, Any, None, bool]]:
            arrays = self._run(pending, output if direct else "logits")
            for array, size in zip(arrays, sizes, strict=True):
                yield array, size, None, direct
            pending.clear()
            sizes.clear()

        # Read and validate eagerly per image; run consecutive same-size images together.
        for image in images:
            try:
                decoded = preprocess.decode(image, self.max_pixels, reduce_to=max_side)
            except PER_IMAGE_ERRORS as error:
                if pending:
                    yield from run_pending()
                yield None, None, error, False
                continue
            target = preprocess.scaled_size(*decoded.size, max_side)
            small = preprocess.resize_rgb(decoded.rgb, target)
            if not tta.is_plain:
                yield self._augmented(small, batch_size, mode, tta), decoded.size, None, False
                continue
            if mode == "slide":
                yield self._slide(small, batch_size), decoded.size, None, False
                continue
            same_size = in_graph and tuple(target) == tuple(decoded.size)
            if pending and (
                len(pending) == batch_size or small.shape != pending[0].shape or same_size != direct
            ):
                yield from run_pending()
            direct = same_size
            pending.append(small)
            sizes.append(decoded.size)
        if pending:
            yield from run_pending()

    def _run(self, rgbs: Sequence[np.ndarray], output: str = "logits") -> np.ndarray:
        """The backend's `output` ("logits", "ids", "probs") of uint8 HxWx3 images of one size;
        "ids" and "probs" only through the graph (`backend.pixels`)."""
        pixels = getattr(self.backend, "pixels", None)
        if pixels is not None:
            result = pixels.run(np.stack(rgbs), output)
        else:
            result = self.backend.run(preprocess.normalize(rgbs, self.config.mean, self.config.std))
        height, width = rgbs[0].shape[:2]
        channels = () if output == "ids" else (self.num_classes,)
        expected = (len(rgbs), *channels, height, width)
        if result.shape != expected:
            raise RuntimeError(
                f"the model returned {output} of shape {result.shape}, expected {expected} "
                "(config.json and the model file disagree?)"
            )
        return result.astype(self.mask_dtype, copy=False) if output == "ids" else result

    def _augmented(self, rgb: np.ndarray, batch_size: int, mode: str, tta: TTA) -> np.ndarray:
        """`zoo.tta.tta_logits` of `rgb`, each pass whole or sliding-window (`mode`)."""
        if mode == "slide":
            return tta_logits(lambda view: self._slide(view, batch_size), rgb, tta)
        return tta_logits(lambda view: self._run([view])[0], rgb, tta)

    def _slide(self, rgb: np.ndarray, batch_size: int) -> np.ndarray:
        """`zoo.sliding.slide_logits` of `rgb` with windows of the config's `input_size`."""
        return slide_logits(self._run, rgb, self.config.input_size, self.num_classes, batch_size)

    # ---------------------------------------------------------------- visualisation
    def colorize(self, mask: np.ndarray) -> np.ndarray:
        """HxW class ids -> HxWx3 uint8 colours of the palette; ids that are not classes
        (255, -1, -100, ...): black."""
        return visualize.colorize(mask, self._lut)

    def overlay(self, image: ImageInput, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """The image blended with the colourised mask (`alpha` = mask weight), HxWx3 uint8.

        Pixels whose id is not a class (e.g. 255) show the image unchanged.
        """
        return visualize.overlay(image, mask, self._lut, self.num_classes, alpha)

    def mask_image(self, mask: np.ndarray) -> Image.Image:
        """A mask as a PIL image: mode "P" with the model's palette (ids <= 255), else a 16-bit
        grayscale ("I;16") image."""
        return visualize.mask_image(mask, self._lut, paletted=self.mask_dtype == np.uint8)
