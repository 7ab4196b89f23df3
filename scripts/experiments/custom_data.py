"""Your own data, measured: fine-tune from the built-in model vs train from scratch, CE vs
CE + CPG, on a generated surface-defect dataset unlike SynthCity (docs/experiments.md).

    python scripts/experiments/custom_data.py --runs /work/runs/custom [--seeds 0 1]

The dataset (`defects`, a folder dataset): 160x160 grey concrete-like textures with thin dark
cracks (random walks, 1-3 px wide) and blob-shaped repair patches of another texture; classes
background / crack / patch, palette-mode masks. Every arm trains the same recipe
(`zoo train --arch lraspp_mbv3 --data-root DATA`, the data's own defaults, then the overrides
below) for the same number of iterations; "fine-tune" adds `init=lraspp_mbv3_synthcity_cpg`,
"scratch" has no ImageNet weights (none can be downloaded here). Each run is evaluated with
`zoo eval` (whole images, boundary tolerance 3 px) into RUNS/<arm>_seed<N>/eval.json; finished
runs are skipped, so the script can be re-run after an interruption. `--summary` prints the
table of what has finished.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ["background", "crack", "patch"]
PALETTE = [[90, 90, 90], [230, 25, 75], [60, 180, 75]]
SIZE = 160
ARMS = {
    "scratch_ce": ["--loss", "ce", "pretrained_backbone=false"],
    "scratch_cpg": ["--loss", "cpg", "pretrained_backbone=false"],
    "finetune_ce": ["--loss", "ce", "init=lraspp_mbv3_synthcity_cpg"],
    "finetune_cpg": ["--loss", "cpg", "init=lraspp_mbv3_synthcity_cpg"],
}
COMMON = ["iterations=150", "batch_size=8", "crop_size=128,128", "amp=none", "device=cpu",
          "workers=0", "threads=1", "eval_interval=150", "checkpoint_interval=50",
          "log_interval=25", "bn_momentum=0.1"]  # fmt: skip


def _texture(rng: np.random.Generator, base: float, contrast: float) -> np.ndarray:
    """A grey noise texture: white noise blurred at two scales."""
    noise = rng.normal(0, 1, (SIZE, SIZE)).astype(np.float32)
    coarse = np.asarray(
        Image.fromarray(noise).resize((SIZE // 8, SIZE // 8)).resize((SIZE, SIZE), Image.BICUBIC)
    )
    return base + contrast * (0.6 * coarse + 0.4 * noise)


def make_sample(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, class-id mask) of one generated surface."""
    rng = np.random.default_rng(seed)
    gray = _texture(rng, rng.uniform(110, 160), rng.uniform(8, 18))
    mask = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(rng.integers(1, 4)):  # repair patches: smooth blobs
        cx, cy = rng.uniform(20, SIZE - 20, 2)
        points = [
            (cx + r * np.cos(a), cy + r * np.sin(a))
            for a, r in zip(
                np.linspace(0, 2 * np.pi, 12, endpoint=False), rng.uniform(12, 35, 12), strict=True
            )
        ]
        draw.polygon(points, fill=2)
    patch_mask = np.asarray(mask.filter(ImageFilter.ModeFilter(5))) == 2
    patch = _texture(rng, rng.uniform(60, 200), rng.uniform(4, 10))
    gray = np.where(patch_mask, patch, gray)
    ids = np.where(patch_mask, 2, 0).astype(np.uint8)
    cracks = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(cracks)
    for _ in range(rng.integers(1, 4)):  # cracks: random walks, 1-3 px wide
        x, y = rng.uniform(0, SIZE, 2)
        angle = rng.uniform(0, 2 * np.pi)
        points = [(x, y)]
        for _ in range(rng.integers(15, 40)):
            angle += rng.normal(0, 0.35)
            x, y = x + 4 * np.cos(angle), y + 4 * np.sin(angle)
            points.append((x, y))
        draw.line(points, fill=1, width=int(rng.integers(1, 4)))
    crack_mask = np.asarray(cracks) == 1
    gray = np.where(crack_mask, gray * rng.uniform(0.3, 0.55), gray)
    ids[crack_mask] = 1
    tint = rng.uniform(0.9, 1.1, 3)
    rgb = np.clip(gray[..., None] * tint, 0, 255).astype(np.uint8)
    return rgb, ids


def write_dataset(root: Path, n_train: int = 300, n_val: int = 60) -> Path:
    """The folder dataset (dataset.json, images/, masks/) under `root`."""
    if (root / ".complete").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(
        json.dumps({"name": "defects", "classes": CLASSES, "palette": PALETTE})
    )
    flat_palette = [v for color in PALETTE for v in color]
    for split, count, offset in (("train", n_train, 0), ("val", n_val, 100_000)):
        for i in range(count):
            rgb, ids = make_sample(offset + i)
            for kind in ("images", "masks"):
                (root / kind / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(root / "images" / split / f"{i:04d}.jpg", quality=92)
            mask = Image.fromarray(ids, mode="P")
            mask.putpalette(flat_palette)
            mask.save(root / "masks" / split / f"{i:04d}.png")
    (root / ".complete").touch()
    return root


def run_arm(runs: Path, data: Path, arm: str, seed: int) -> None:
    out = runs / f"{arm}_seed{seed}"
    if (out / "eval.json").exists():
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    zoo = [sys.executable, "-m", "zoo.cli"]
    train = [*zoo, "train", "--arch", "lraspp_mbv3", "--data-root", str(data), "--out", str(out),
             *ARMS[arm], *COMMON, f"seed={seed}", "--resume", "--no-progress"]  # fmt: skip
    subprocess.run(["nice", "-n", "10", *train], check=True, env=env)
    evaluate = [*zoo, "eval", str(out / "last.pt"), "--data-root", str(data), "--device", "cpu",
                "--workers", "0", "--no-progress", "--out", str(out / "eval.json")]  # fmt: skip
    subprocess.run(["nice", "-n", "10", *evaluate], check=True, env=env)


def summary(runs: Path) -> str:
    """Markdown table: mean ± sample std over the finished seeds of each arm (in %)."""
    lines = ["| arm | seeds | mIoU | mBF @ 3 px | crack IoU | crack BF | patch IoU |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for arm in ARMS:
        results = [
            json.loads(path.read_text())["metrics"]
            for path in sorted(runs.glob(f"{arm}_seed*/eval.json"))
        ]
        if not results:
            continue

        def stat(values: list[float]) -> str:
            values = [100 * v for v in values]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):.1f} ± {spread:.1f}"

        per_class_bf = [r.get("per_class_bf") or r.get("per_class_BF") or [] for r in results]
        lines.append(
            f"| {arm} | {len(results)} | {stat([r['mIoU'] for r in results])} | "
            f"{stat([r['mBF'] for r in results])} | "
            f"{stat([r['per_class_iou'][1] or 0.0 for r in results])} | "
            f"{stat([bf[1] or 0.0 for bf in per_class_bf]) if all(per_class_bf) else '-'} | "
            f"{stat([r['per_class_iou'][2] or 0.0 for r in results])} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="/work/runs/custom", type=Path)
    parser.add_argument("--data", default="/work/runs/data/defects", type=Path)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    parser.add_argument("--summary", action="store_true", help="only print the table")
    args = parser.parse_args()
    if not args.summary:
        data = write_dataset(args.data)
        for seed in args.seeds:
            for arm in ARMS:
                run_arm(args.runs, data, arm, seed)
    print(summary(args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
