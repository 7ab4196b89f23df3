"""Image reading, normalisation, resizing and tiling, shared by every backend (numpy + PIL).

Everything a backend sees goes through here, so the ONNX Runtime and torch backends get the
same tensors: RGB uint8 HxWx3 -> float32 NCHW normalised with the model's mean/std. Logits come
back as float32 CxHxW and are resized here too (bilinear, half-pixel centres, as
`torch.nn.functional.interpolate(..., align_corners=False)`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

ImageInput: TypeAlias = "str | os.PathLike[str] | Image.Image | np.ndarray | DecodedImage"

IMAGE_EXTENSIONS: Final = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
)
"""Image-file suffixes (lower case) of the one list every reader takes: `zoo predict` folders,
folder datasets and export calibration frames. Pillow decodes each and `read_image` turns
every mode (palette, grey, 16-bit, alpha) into RGB."""
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
# Formats that hold at most 16 bits a channel: their "I" images (older Pillow opens 16-bit
# PNG / PGM so) are 16-bit; any other "I" image is 32-bit with no known range.
_SIXTEEN_BIT_FORMATS = {"PNG", "PPM"}
# EXIF orientations that swap width and height (the readers apply the orientation)
TRANSPOSING_ORIENTATIONS: Final = frozenset({5, 6, 7, 8})

MAX_IMAGE_PIXELS: Final = 50_000_000
"""Default pixel limit of `zoo predict`, `Segmenter` and the demo. An image with more pixels is
refused from its header, before decoding: a 10000x10000 PNG of a few hundred KB would otherwise
take ~1.5 GB to segment. Pass `max_pixels=None` (`--max-pixels 0`) to lift it; PIL's own
decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`, ~179 MP) still applies to files."""


class ImageTooLargeError(ValueError):
    """An image has more pixels than the limit it is read under (`MAX_IMAGE_PIXELS`)."""


@dataclass(frozen=True)
class DecodedImage:
    """An image decoded for a model: `rgb` (RGB uint8 HxWx3, possibly decoded at a reduced
    scale, see `open_image`) and `size`, the (height, width) of the full image after EXIF
    rotation, at which masks are returned."""

    rgb: np.ndarray
    size: tuple[int, int]

    @property
    def reduced(self) -> bool:
        """Whether `rgb` is smaller than the full image."""
        return tuple(self.rgb.shape[:2]) != tuple(self.size)


def describe(image: Any) -> str:
    """A short name for an input in error messages."""
    if isinstance(image, str | os.PathLike):
        return str(image)
    if isinstance(image, np.ndarray):
        return f"array of shape {image.shape} and dtype {image.dtype}"
    if isinstance(image, Image.Image):
        return f"PIL image ({image.mode}, {image.width}x{image.height})"
    if isinstance(image, DecodedImage):
        return f"decoded image ({image.size[1]}x{image.size[0]})"
    return type(image).__name__


def check_pixels(width: int, height: int, max_pixels: int | None, name: str) -> None:
    """Raise ImageTooLargeError naming `name` when width x height exceeds `max_pixels`
    (None or 0: no limit)."""
    if max_pixels and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} is {_pixel_count(width * height, '.1f')}, over the limit "
            f"of {_pixel_count(max_pixels, 'g')} (max_pixels= or --max-pixels; 0 = no limit)"
        )


def _pixel_count(pixels: int, megapixel_format: str) -> str:
    """`pixels` for a message: in megapixels from 0.1 MP up, else as a count (a limit of 5
    pixels is not "0.0 megapixels")."""
    if pixels >= 100_000:
        return f"{pixels / 1e6:{megapixel_format}} megapixels"
    return f"{pixels:,} pixels"


def is_image_file(path: Path) -> bool:
    """Whether `path` names an image file by the readers' rule: a suffix of `IMAGE_EXTENSIONS`
    (any case) and not a hidden file (`.name`, e.g. macOS `._photo.jpg` resource forks)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def read_image(path: str | os.PathLike[str], max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as RGB uint8 HxWx3 (EXIF orientation applied).

    Raises FileNotFoundError for a missing file, ImageTooLargeError (checked from the header,
    before decoding) for one over `max_pixels`, and ValueError for one that is not a readable
    image, all naming the file.
    """
    return open_image(path, max_pixels).rgb


def open_image(
    path: str | os.PathLike[str],
    max_pixels: int | None = MAX_IMAGE_PIXELS,
    reduce_to: int | None = None,
) -> DecodedImage:
    """Read an image file for a model that will process it with a longer side of at most
    `reduce_to` px (None: full size).

    The pixel limit is checked from the header before anything is decoded. Where the format
    allows (JPEG), a large image is decoded at 1/2, 1/4 or 1/8 scale (`Image.draft`), never
    below the size the model needs, which saves most of the decoding time and memory.
    Errors as `read_image`.
    """
    name = os.fspath(path)  # as given: Path() would turn "https://host" into "https:/host"
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"{path} is a folder, not an image file; pass its images as a list (or run "
            "`zoo predict FOLDER`)"
        )
    if not path.is_file():
        url = "; URLs are not downloaded: fetch the file first" if "://" in name else ""
        raise FileNotFoundError(f"image file not found: {name}{url}")
    try:
        with Image.open(path) as image:
            width, height = image.size
            check_pixels(width, height, max_pixels, str(path))
            if reduce_to and max(width, height) > reduce_to:
                target_height, target_width = scaled_size(height, width, reduce_to)
                image.draft(image.mode, (target_width, target_height))  # no-op but for JPEG
            image.load()
            orientation = image.getexif().get(ExifTags.Base.Orientation)
            size = (width, height) if orientation in TRANSPOSING_ORIENTATIONS else (height, width)
            return DecodedImage(pil_to_rgb(image), size)
    except ImageTooLargeError:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        SyntaxError,
        ValueError,
    ) as error:
        raise ValueError(f"cannot read image {path}: {error}") from None


def decode(
    image: ImageInput, max_pixels: int | None = MAX_IMAGE_PIXELS, reduce_to: int | None = None
) -> DecodedImage:
    """Any supported input -> `DecodedImage`, refusing images over `max_pixels`; files are
    read with `open_image(path, max_pixels, reduce_to)`."""
    if isinstance(image, DecodedImage):
        check_pixels(image.size[1], image.size[0], max_pixels, describe(image))
        return image
    if isinstance(image, str | os.PathLike):
        return open_image(image, max_pixels, reduce_to)
    if isinstance(image, Image.Image):  # possibly opened lazily: check before decoding
        check_pixels(image.width, image.height, max_pixels, describe(image))
    rgb = to_rgb(image)  # validates arrays (dtype, shape) and rejects other types
    check_pixels(rgb.shape[1], rgb.shape[0], max_pixels, describe(image))
    return DecodedImage(rgb, (rgb.shape[0], rgb.shape[1]))


def pil_to_rgb(image: Image.Image) -> np.ndarray:
    """A PIL image of any mode -> RGB uint8 HxWx3: EXIF rotation applied, alpha dropped,
    grayscale/palette expanded, 16-bit scaled to 8-bit."""
    file_format = image.format
    image = ImageOps.exif_transpose(image)
    if image.mode == "I" and file_format not in _SIXTEEN_BIT_FORMATS:
        raise ValueError(
            "32-bit integer ('I' mode) images have no known value range; convert to 8-bit "
            "('L' or 'RGB') or 16-bit ('I;16') first"
        )
    if image.mode == "La":  # premultiplied alpha: PIL converts it to RGB only via LA
        image = image.convert("LA")
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "I":
        data = np.asarray(image).astype(np.float32)
        data = np.clip(np.rint(data / 257.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(data[..., None], 3, axis=2))
    if image.mode == "F":
        raise ValueError("float ('F' mode) images are not supported; convert to 8-bit first")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # PIL warns when a transparent palette goes to RGB
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()


def array_to_rgb(array: np.ndarray) -> np.ndarray:
    """Validate an array input: HxW, HxWx1, HxWx3 or HxWx4, uint8 or uint16 -> RGB uint8."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(array).__name__}")
    if array.dtype == np.uint16:
        array = np.rint(array.astype(np.float32) / 257.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ValueError(
            f"image array must be uint8 (or uint16), got dtype {array.dtype}; for floats in "
            "[0, 1] use (a * 255).round().astype(np.uint8)"
        )
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        hint = ""
        if array.ndim == 4:
            hint = "; a batch of images goes in as a list: list(batch)"
        elif array.ndim == 3 and array.shape[0] in (1, 3, 4):
            hint = "; a channel-first CxHxW array goes in as array.transpose(1, 2, 0)"
        raise ValueError(
            f"image array must have shape HxW, HxWx1, HxWx3 or HxWx4, got {array.shape}{hint}"
        )
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[..., :3])


def to_rgb(image: ImageInput) -> np.ndarray:
    """Any supported input (path, PIL image, array, `DecodedImage`) -> RGB uint8 HxWx3."""
    if isinstance(image, DecodedImage):
        return image.rgb
    if isinstance(image, str | os.PathLike):
        return read_image(image)
    if isinstance(image, Image.Image):
        return pil_to_rgb(image)
    if isinstance(image, np.ndarray):
        return array_to_rgb(image)
    if isinstance(image, bytes | bytearray | memoryview):
        hint = "; for the bytes of an image file pass PIL.Image.open(io.BytesIO(data))"
    elif isinstance(image, list | tuple):
        hint = " (this takes one image; Segmenter.predict and predict_proba take a list)"
    elif type(image).__module__.startswith("torch"):  # a CxHxW tensor, say, from a loader
        hint = (
            "; a torch tensor CxHxW in [0, 1] goes in as "
            "(t * 255).round().byte().permute(1, 2, 0).cpu().numpy()"
        )
    elif isinstance(image, Iterable):
        hint = "; several images go in as a list"
    else:
        hint = ""
    raise TypeError(
        f"unsupported image input {type(image).__name__}; pass a path, a PIL image or an "
        f"HxWx3 uint8 array{hint}"
    )


def scaled_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) shrunk so that the longer side is at most `max_side` (never enlarged)."""
    if not max_side or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize RGB uint8 to (height, width), bilinear (antialiased when shrinking)."""
    if rgb.shape[:2] == tuple(size):
        return rgb
    resized = Image.fromarray(rgb).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def normalize(
    images: Sequence[np.ndarray] | np.ndarray, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """RGB uint8 HxWx3 image(s) of one size -> float32 NCHW, `(x / 255 - mean) / std`: the
    arithmetic of torchvision's `ToDtype(scale=True)` + `Normalize` used in training, so every
    stage (training, evaluation, export, runtime) feeds the network the same floats."""
    batch = np.stack(images) if not isinstance(images, np.ndarray) else images
    if batch.ndim == 3:
        batch = batch[None]
    out: np.ndarray = batch.astype(np.float32) / np.float32(255.0)
    out = (out - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of bilinear resampling along one axis (half-pixel)."""
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0, n_in - 1)
    low = np.floor(pos).astype(np.intp)
    high = np.minimum(low + 1, n_in - 1)
    return low, high, (pos - low).astype(np.float32)


def _resize_rows(
    logits: np.ndarray, size: tuple[int, int], band: int = 64
) -> Iterator[tuple[slice, np.ndarray]]:
    """Bilinearly resized CxHxW logits, yielded in bands of output rows (bounded memory)."""
    y_low, y_high, y_w = _axis_weights(logits.shape[1], size[0])
    x_low, x_high, x_w = _axis_weights(logits.shape[2], size[1])
    same_width = logits.shape[2] == size[1]
    for start in range(0, size[0], band):
        rows = slice(start, min(start + band, size[0]))
        top, bottom = logits[:, y_low[rows], :], logits[:, y_high[rows], :]
        out = top + (bottom - top) * y_w[None, rows, None]
        if not same_width:
            left, right = out[:, :, x_low], out[:, :, x_high]
            out = left + (right - left) * x_w
        yield rows, out


def resize_logits(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """CxHxW float32 -> Cx`size` float32, bilinear (align_corners=False)."""
    if logits.shape[1:] == tuple(size):
        return logits
    out = np.empty((logits.shape[0], *size), np.float32)
    for rows, band in _resize_rows(logits, size):
        out[:, rows] = band
    return out


def class_argmax(logits: np.ndarray, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """`logits.argmax(axis=0)` as `dtype`, one contiguous class plane at a time (several times
    faster than numpy's strided argmax over the first axis; ties go to the lower id too)."""
    best = logits[0].copy()
    ids = np.zeros(logits.shape[1:], dtype)
    greater = np.empty(logits.shape[1:], bool)
    for index in range(1, logits.shape[0]):
        np.greater(logits[index], best, out=greater)
        np.maximum(best, logits[index], out=best)
        np.putmask(ids, greater, index)
    return ids


def argmax_resized(
    logits: np.ndarray, size: tuple[int, int], dtype: np.dtype | type = np.uint8
) -> np.ndarray:
    """Class ids (HxW of `dtype`) of CxHxW logits bilinearly resized to `size`.

    Same result as `class_argmax(resize_logits(logits, size))`, computed cheaply: a bilinear
    sample is a convex combination of 4 source pixels, so where those 4 agree on the argmax the
    sample has that argmax too; only the other (boundary) pixels are interpolated.
    """
    if logits.shape[1:] == tuple(size):
        return class_argmax(logits, dtype)
    low = class_argmax(logits, dtype)
    y_low, y_high, y_w = _axis_weights(logits.shape[1], size[0])
    x_low, x_high, x_w = _axis_weights(logits.shape[2], size[1])
    top, bottom = low[y_low], low[y_high]
    ids = top[:, x_low]
    unsure = ids != top[:, x_high]
    unsure |= ids != bottom[:, x_low]
    unsure |= ids != bottom[:, x_high]
    rows, cols = np.nonzero(unsure)
    if rows.size > 0.25 * ids.size:  # noise-like logits: interpolate everything, band by band
        for band_rows, band in _resize_rows(logits, size):
            ids[band_rows] = class_argmax(band, dtype)
        return ids
    if rows.size:
        r0, r1, fy = y_low[rows], y_high[rows], y_w[rows]
        c0, c1, fx = x_low[cols], x_high[cols], x_w[cols]
        # the arithmetic of `_resize_rows` (rows first, then columns), so results are identical
        upper_left, lower_left = logits[:, r0, c0], logits[:, r1, c0]
        upper_right, lower_right = logits[:, r0, c1], logits[:, r1, c1]
        left = upper_left + (lower_left - upper_left) * fy
        right = upper_right + (lower_right - upper_right) * fy
        ids[rows, cols] = class_argmax(left + (right - left) * fx, dtype)
    return ids


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    """Numerically stable softmax in float32."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted


def slide_stride(window: Sequence[int]) -> tuple[int, int]:
    """The default sliding-window stride: ceil(2/3) of the window (windows overlap by at most a
    third), in exact integer arithmetic. The one definition used by evaluation and the runtime:
    (342, 683) for a 512x1024 window."""
    return (max(1, -(-2 * int(window[0]) // 3)), max(1, -(-2 * int(window[1]) // 3)))


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of `window` covering `length` (last one flush with the end)."""
    if length <= window:
        return [0]
    count = math.ceil((length - window) / stride) + 1
    return sorted({min(i * stride, length - window) for i in range(count)})


def sliding_windows(
    height: int,
    width: int,
    window: Sequence[int],
    stride: Sequence[int] | None = None,
) -> list[tuple[slice, slice]]:
    """(rows, cols) slices of `window`-sized tiles covering an image, every `stride` px
    (default `slide_stride(window)`), the last tile of a row or column flush with the edge
    (MMSegmentation's slide mode). Tiles are clipped to the image where it is smaller than
    the window. Shared by `training.evaluate` and `Segmenter`, so both run the same tiles."""
    stride_h, stride_w = stride if stride is not None else slide_stride(window)
    if min(stride_h, stride_w) < 1:
        raise ValueError(f"sliding-window stride must be positive, got {(stride_h, stride_w)}")
    win_h, win_w = min(int(window[0]), height), min(int(window[1]), width)
    return [
        (slice(y, y + win_h), slice(x, x + win_w))
        for y in window_starts(height, win_h, stride_h)
        for x in window_starts(width, win_w, stride_w)
    ]
