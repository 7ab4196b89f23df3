"""Which backend and precision `zoo.load` uses, and the accuracy gates of reduced precision.

`backend="auto", precision="auto"` (the default) on a CPU takes the first usable path of
`CPU_ORDER`, fastest first as measured side by side (docs/benchmarks.md, "Serving paths"):
OpenVINO bf16, OpenVINO int8, ONNX Runtime int8, ONNX Runtime fp32, OpenVINO fp32, torch.
Usable: its library installed, its model file present, bf16 only where OpenVINO reports BF16
for this CPU, and a reduced precision only with a recorded argmax agreement with fp32 at or
above its gate (`GATES`) in the model directory's eval.json. Where a GPU provider of ONNX
Runtime is compiled in (and `device` is not "cpu") it is ONNX Runtime fp32, else torch, as
before.

An explicit precision with `backend="auto"` takes the first backend of `BACKENDS` that has a
file for it (fp32/int8/fp16: ONNX Runtime, bf16: OpenVINO); an explicit backend with
`precision="auto"` means fp32. A path whose recorded agreement is below the gate is refused
unless `min_agreement` is lowered; one without a record loads when asked for explicitly.

Agreement records (eval.json, written by `export.precision_gates`):
`{"precision_agreement": {"openvino/bf16": {"argmax_agreement": 0.998, ...}, ...}}`; for
ONNX Runtime int8 the export's own parity figure (`export.parity.int8`) counts too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from zoo.backend_onnx import GPU_PROVIDERS
from zoo.backend_openvino import openvino_capabilities
from zoo.backends import BACKENDS
from zoo.errors import ModelNotAvailableError
from zoo.modelfiles import EVAL_NAME, ONNX_NAME, WEIGHTS_NAME

# Minimum argmax agreement with fp32 (fraction of pixels) for a reduced precision.
GATES: Final = {"bf16": 0.995, "int8": 0.98, "fp16": 0.99}
AGREEMENT_KEY: Final = "precision_agreement"
CPU_ORDER: Final = (
    ("openvino", "bf16"),
    ("openvino", "int8"),
    ("onnx", "int8"),
    ("onnx", "fp32"),
    ("openvino", "fp32"),
    ("torch", "fp32"),
)
GPU_ORDER: Final = (("onnx", "fp32"), ("torch", "fp32"))


@dataclass
class Choice:
    """The path `zoo.load` took and why (`Segmenter.selection`)."""

    backend: str
    precision: str
    reason: str
    skipped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.backend}/{self.precision}: {self.reason}"
        return text + (f"; skipped: {'; '.join(self.skipped)}" if self.skipped else "")


def recorded_agreement(model_dir: Path, backend: str, precision: str) -> float | None:
    """The argmax agreement with fp32 that eval.json records for `backend/precision`."""
    try:
        data = json.loads((model_dir / EVAL_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    record = (data.get(AGREEMENT_KEY) or {}).get(f"{backend}/{precision}")
    if isinstance(record, dict) and isinstance(record.get("argmax_agreement"), int | float):
        return float(record["argmax_agreement"])
    if backend == "onnx" and precision in ("int8", "fp16"):  # the export's parity check
        parity: Any = ((data.get("export") or {}).get("parity") or {}).get(precision) or {}
        if isinstance(parity.get("argmax_agreement"), int | float):
            return float(parity["argmax_agreement"])
    return None


def gate(precision: str, min_agreement: float | None) -> float | None:
    """The agreement a precision must reach (None: fp32, no gate)."""
    if precision == "fp32":
        return None
    return GATES.get(precision, 0.0) if min_agreement is None else min_agreement


def _unusable(model_dir: Path, backend: str, precision: str) -> str | None:
    """Why `backend/precision` cannot run here, or None."""
    row = BACKENDS[backend]
    if not row.installed():
        return f"{backend}/{precision}: {row.module} not installed ({row.install_hint()})"
    if not (model_dir / row.files[precision]).is_file():
        return f"{backend}/{precision}: no {row.files[precision]}"
    if backend == "openvino" and precision == "bf16" and "BF16" not in openvino_capabilities():
        return f"{backend}/{precision}: OpenVINO reports no BF16 support on this CPU"
    return None


def _gpu_wanted(device: str) -> bool:
    if device == "cpu":
        return False
    if device.startswith("cuda"):
        return True
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return any(p in ort.get_available_providers() for p in GPU_PROVIDERS)


def choose(
    model_dir: Path,
    backend: str,
    precision: str,
    device: str,
    min_agreement: float | None = None,
) -> Choice:
    """Resolve "auto" backend and precision for `model_dir` (see the module docstring)."""
    if min_agreement is not None and not 0.0 <= min_agreement <= 1.0:
        raise ValueError(
            f"min_agreement is a fraction in [0, 1] (e.g. 0.98 for 98%), got {min_agreement}"
        )
    if backend != "auto" or precision != "auto":
        return _explicit(model_dir, backend, precision, min_agreement)
    skipped: list[str] = []
    order = GPU_ORDER if _gpu_wanted(device) else CPU_ORDER
    for index, (name, wanted) in enumerate(order):
        problem = _unusable(model_dir, name, wanted)
        threshold = gate(wanted, min_agreement)
        agreement = recorded_agreement(model_dir, name, wanted)
        if problem is None and threshold is not None:
            if agreement is None:
                problem = f"{name}/{wanted}: no recorded agreement with fp32 in {EVAL_NAME}"
            elif agreement < threshold:
                problem = (
                    f"{name}/{wanted}: recorded agreement {agreement:.2%} < gate {threshold:.2%}"
                )
        if problem is not None:
            skipped.append(problem)
            continue
        where = "GPU" if order is GPU_ORDER else "CPU"
        reason = f"fastest usable {where} path" if index == 0 else f"next {where} path"
        if threshold is not None and agreement is not None:
            reason += f" (argmax agreement {agreement:.2%} >= gate {threshold:.2%}, {EVAL_NAME})"
        return Choice(name, wanted, reason, skipped)
    files = {f for row in BACKENDS.values() for f in row.files.values()}
    if not any((model_dir / name).is_file() for name in files):
        present = sorted(p.name for p in model_dir.iterdir())
        raise ModelNotAvailableError(
            f"{model_dir} has neither {ONNX_NAME} nor {WEIGHTS_NAME}; present: "
            f"{', '.join(present) or '(nothing)'}. Re-export the model or download it again."
        )
    raise ModelNotAvailableError(
        f"{model_dir}: no usable backend ({'; '.join(skipped)}). Install one, re-export the "
        "model or download it again."
    )


def _explicit(model_dir: Path, backend: str, precision: str, min_agreement: float | None) -> Choice:
    if backend == "auto":
        names = [n for n, row in BACKENDS.items() if precision in row.files]
        present = [n for n in names if (model_dir / BACKENDS[n].files[precision]).is_file()]
        backend = (present or names)[0]
        if precision == "fp32" and not present:  # no ONNX file: the torch weights
            backend = "torch"
        reason = f"precision={precision!r} asked for"
    else:
        precision = "fp32" if precision == "auto" else precision
        reason = f"backend={backend!r} asked for"
    if precision not in BACKENDS[backend].files:
        have = ", ".join(BACKENDS[backend].files)
        raise ValueError(f"backend={backend!r} has no precision {precision!r} (it has: {have})")
    threshold = gate(precision, min_agreement)
    agreement = recorded_agreement(model_dir, backend, precision)
    if threshold is not None and agreement is not None and agreement < threshold:
        raise ValueError(
            f"{model_dir}: {backend}/{precision} agrees with fp32 on {agreement:.2%} of pixels "
            f"({EVAL_NAME}), below the gate of {threshold:.2%}; pass min_agreement="
            f"{agreement:.4f} (CLI: --min-agreement) to use it anyway"
        )
    if agreement is not None:
        reason += f" (argmax agreement {agreement:.2%}, {EVAL_NAME})"
    return Choice(backend, precision, reason)
