"""The files of a model directory (also the layout of its Hub repo): one row per kind.

Each row says the file's name, the precision of the numbers it stores, which backends load
it (hence whether `zoo export` records its sha256 in config.json, checked on load, and when a
Hub pull fetches it) and whether the model card lists it. The export, the runtime's checks,
the Hub's pull and push lists and the cards derive their file lists from `MODEL_DIR_FILES`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelDirFile:
    """One kind of file in a model directory."""

    name: str  # the file name
    description: str  # what it holds, for help texts
    precision: str | None = None  # precision of the stored numbers; None for metadata
    backends: tuple[str, ...] = ()  # the backends (`zoo.backends.BACKENDS`) that load it
    listed_on_card: bool = False  # named in the card's "files" line when present

    @property
    def hashed(self) -> bool:
        """A file a backend loads has its sha256 recorded in config.json at export and checked
        on load; metadata (config, eval.json, card) is rewritten by later steps."""
        return bool(self.backends)

    @property
    def pulled_always(self) -> bool:
        """A Hub pull fetches metadata files whatever the backend; model files only for the
        backend (and precision) that loads them."""
        return not self.backends


CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ONNX_NAME = "model.onnx"
ONNX_INT8_NAME = "model.int8.onnx"
ONNX_FP16_NAME = "model.fp16.onnx"
EVAL_NAME = "eval.json"
CARD_NAME = "README.md"

MODEL_DIR_FILES: tuple[ModelDirFile, ...] = (
    ModelDirFile(CONFIG_NAME, "architecture, classes, normalisation, recipe, file hashes"),
    ModelDirFile(WEIGHTS_NAME, "weights", "fp32", ("torch",), listed_on_card=True),
    ModelDirFile(
        ONNX_NAME,
        "ONNX graph, fp32",
        "fp32",
        ("onnx", "openvino"),
        listed_on_card=True,
    ),
    ModelDirFile(
        ONNX_INT8_NAME,
        "ONNX graph, int8 (QDQ)",
        "int8",
        ("onnx", "openvino"),
        listed_on_card=True,
    ),
    ModelDirFile(
        ONNX_FP16_NAME,
        "ONNX graph, fp16 (GPU)",
        "fp16",
        ("onnx",),
        listed_on_card=True,
    ),
    ModelDirFile(EVAL_NAME, "measured metrics and the export report"),
    ModelDirFile(CARD_NAME, "model card"),
)
FILE_KINDS: dict[str, ModelDirFile] = {row.name: row for row in MODEL_DIR_FILES}


# The files a backend loads: their sha256 is recorded in config.json under FILES_KEY at export
# and checked on load (eval.json and README.md are metadata that later steps rewrite).
MODEL_FILES: tuple[str, ...] = tuple(row.name for row in MODEL_DIR_FILES if row.hashed)
FILES_KEY = "files"
# Everything a push uploads; nothing else in a model directory goes up.
ALL_FILES: tuple[str, ...] = tuple(FILE_KINDS)
# Files every Hub pull fetches when the repo has them.
METADATA_FILES: tuple[str, ...] = tuple(row.name for row in MODEL_DIR_FILES if row.pulled_always)
# The files the card's "files" line names, in this order, when the directory has them.
CARD_LISTED_FILES: tuple[str, ...] = tuple(
    row.name for row in MODEL_DIR_FILES if row.listed_on_card
)


def files_loaded_by(backend: str) -> dict[str, str]:
    """`{precision: file name}` of the stored files `backend` loads (e.g. "onnx" ->
    fp32/int8/fp16 ONNX files)."""
    return {
        row.precision: row.name
        for row in MODEL_DIR_FILES
        if backend in row.backends and row.precision is not None
    }
