"""Build small model directories for tests and benchmarks (random, BN-calibrated weights).

Random-init networks give near-constant logits; running a few train-mode forward passes on
smooth random images recalibrates the BatchNorm statistics so masks vary across an image and
the backends can be compared meaningfully.
"""

from __future__ import annotations

from pathlib import Path

from bench.synthetic import smooth_image
from zoo.config import ModelConfig
from zoo.modeldir import record_files
from zoo.modelfiles import ONNX_NAME, WEIGHTS_NAME


def calibrated_model(arch: str, num_classes: int, seed: int = 0, size: int = 128):
    """`zoo.models.build_model(arch, num_classes)` with BN statistics from smooth images."""
    import torch

    from bench.synthetic import recalibrate_bn
    from zoo.models import build_model
    from zoo.preprocess import normalize

    torch.manual_seed(seed)
    model = build_model(arch, num_classes)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    batches = [
        torch.from_numpy(
            normalize([smooth_image(size, size, seed=1000 * seed + 4 * step + i) for i in range(4)],
                      mean, std)
        )
        for step in range(4)
    ]  # fmt: skip
    return recalibrate_bn(model, batches)


def make_model_dir(
    directory: str | Path,
    num_classes: int = 4,
    arch: str = "lraspp_mbv3",
    dataset: str = "cityscapes",
    input_size: tuple[int, int] = (64, 96),
    onnx: bool = True,
    weights: bool = True,
    seed: int = 0,
) -> Path:
    """Write config.json, model.safetensors and model.onnx (legacy exporter, dynamic
    batch/height/width) for a BN-calibrated random model, with the sha256 record of the
    model files in config.json as `zoo export` writes it; return the directory."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    palette = [
        [(37 * i) % 256, (91 * i + 50) % 256, (173 * i + 100) % 256] for i in range(num_classes)
    ]
    config = ModelConfig.for_dataset(
        arch,
        dataset,
        num_classes=num_classes,
        classes=[f"class{i}" for i in range(num_classes)],
        palette=palette,
        input_size=list(input_size),
        model_id=f"test_{arch}_{num_classes}",
    )
    config.save(directory)
    model = calibrated_model(arch, num_classes, seed=seed)
    if weights:
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME))
    if onnx:
        from export.onnx_export import export_onnx

        export_onnx(model, directory / ONNX_NAME, num_classes, opset=17, sample_size=input_size)
    record_files(directory)
    return directory


def shared_model_dir(base: str | Path, **kwargs: object) -> Path:
    """`make_model_dir` once per `base` folder and arguments (reused by later callers)."""
    name = "model_" + "_".join(f"{key}-{value}" for key, value in sorted(kwargs.items()))
    directory = Path(base) / name.replace(" ", "").replace(",", "x")
    if not (directory / ONNX_NAME).is_file():
        make_model_dir(directory.with_name(directory.name + ".tmp"), **kwargs)  # type: ignore[arg-type]
        directory.with_name(directory.name + ".tmp").rename(directory)
    return directory
