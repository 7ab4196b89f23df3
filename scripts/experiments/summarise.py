"""Tables and plots of the SynthCity CPG sweep from the runs that have finished.

Usage: python scripts/experiments/summarise.py [--runs /work/runs/sweep | --runs RECORD.jsonl]
           [--record docs/experiments_sweep_runs.jsonl]
           [--markdown OUT.md] [--plot docs/experiments_sweep.png]
           [--frame docs/experiments_frame.png --data-root DIR [--frame-arms A B]]

Reads RUNS/*/eval.json (written by eval_run.py), or a record of them (one eval.json per
line, written by `--record`, kept in git while the run folders are not), and prints markdown
tables: per arm the mean and sample standard deviation over the seeds done, the boundary
metrics at every tolerance, differences to CE at equal compute paired by seed, and every run.
The plot shows mIoU and mBF against lambda (k = 3) and k (lambda = 1), each seed a point, CE
as horizontal lines. The frame picture shows the val frame where two arms' boundary F (3 px)
differs most. Needs matplotlib.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

# arm -> (label, lambda, k, ignore mode); lambda 0 is cross-entropy alone.
ARMS: dict[str, tuple[str, float, int, str]] = {
    "ce": ("CE, 600 it", 0.0, 0, ""),
    "ce_equal_compute": ("CE, equal compute", 0.0, 0, ""),
    "ce_equal_compute_k7": ("CE, k = 7 budget", 0.0, 0, ""),
    "cpg_l0.25_k3": ("CPG λ=0.25 k=3", 0.25, 3, "exclude"),
    "cpg_l0.5_k3": ("CPG λ=0.5 k=3", 0.5, 3, "exclude"),
    "cpg_l1_k3": ("CPG λ=1 k=3", 1.0, 3, "exclude"),
    "cpg_l2_k3": ("CPG λ=2 k=3", 2.0, 3, "exclude"),
    "cpg_l4_k3": ("CPG λ=4 k=3", 4.0, 3, "exclude"),
    "cpg_l1_k5": ("CPG λ=1 k=5", 1.0, 5, "exclude"),
    "cpg_l1_k7": ("CPG λ=1 k=7", 1.0, 7, "exclude"),
    "cpg_l1_k3_reference": ("CPG λ=1 k=3, ignore reference", 1.0, 3, "reference"),
}
TOLERANCES = ("1", "3", "5", "cheng")
BASELINE = "ce_equal_compute"
# (baseline, arms compared with it; None: every CPG arm): CE at the budget of CPG k = 3, and
# CE at the budget of CPG k = 7, the most expensive arm (so a conservative budget for all).
PAIRINGS: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    (BASELINE, None),
    ("ce_equal_compute_k7", None),
)


def load_runs(source: Path) -> list[dict[str, Any]]:
    """Finished runs (their eval.json, from a runs folder or a record), known arms only, in
    ARMS order then seed."""
    runs = []
    if source.is_file():
        lines = source.read_text().splitlines()
        runs = [run for line in lines if line.strip() and (run := json.loads(line))["arm"] in ARMS]
    for path in sorted(source.glob("*/eval.json")) if source.is_dir() else []:
        run = json.loads(path.read_text())
        if run.get("arm") in ARMS:
            run["folder"] = str(path.parent)
            runs.append(run)
    order = list(ARMS)
    return sorted(runs, key=lambda r: (order.index(r["arm"]), r["seed"]))


def value(run: dict[str, Any], metric: str, tolerance: str = "3") -> float:
    """A metric of a run in %: mIoU / pixel_acc, or a boundary metric at `tolerance`."""
    if metric in ("mIoU", "pixel_acc"):
        return 100 * run["metrics"][metric]
    return 100 * run["boundary"][tolerance][metric]


def spread(values: list[float], signed: bool = False) -> str:
    """`mean ± sample sd` (just the value for one run)."""
    sign = "+" if signed else ""
    if len(values) == 1:
        return f"{values[0]:{sign}.2f}"
    return f"{statistics.mean(values):{sign}.2f} ± {statistics.stdev(values):.2f}"


def by_arm(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(run["arm"], []).append(run)
    return groups


def tables(runs: list[dict[str, Any]]) -> str:
    """The markdown tables."""
    groups = by_arm(runs)
    lines = [
        "| arm | seeds done | mIoU | mBF @ 3 px | mBIoU @ 3 px | mBIoU Cheng | pixel acc |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, group in groups.items():
        cells = [spread([value(r, m) for r in group]) for m in ("mIoU", "mBF", "mBIoU")]
        cells.append(spread([value(r, "mBIoU", "cheng") for r in group]))
        cells.append(spread([value(r, "pixel_acc") for r in group]))
        seeds = ", ".join(str(r["seed"]) for r in group)
        lines.append(f"| {ARMS[arm][0]} | {seeds} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Boundary metrics at each tolerance (mean over the seeds done, %; Cheng: d = 2% of the "
        "diagonal, 11 px at 256x512, image border a contour):",
        "",
        "| arm | mBF 1 px | mBF 3 px | mBF 5 px | mBF Cheng | mBIoU 1 px | mBIoU 3 px "
        "| mBIoU 5 px | mBIoU Cheng |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, group in groups.items():
        cells = [
            f"{statistics.mean(value(r, metric, t) for r in group):.2f}"
            for metric in ("mBF", "mBIoU")
            for t in TOLERANCES
        ]
        lines.append(f"| {ARMS[arm][0]} | " + " | ".join(cells) + " |")
    columns = [("mIoU", "3"), ("mBF", "1"), ("mBF", "3"), ("mBF", "5"), ("mBIoU", "3"),
               ("mBIoU", "cheng")]  # fmt: skip
    for reference, compared in PAIRINGS:
        baseline = {r["seed"]: r for r in groups.get(reference, [])}
        rows = []
        for arm, group in groups.items():
            pairs = [(r, baseline[r["seed"]]) for r in group if r["seed"] in baseline]
            if not pairs or arm.startswith("ce") or (compared and arm not in compared):
                continue
            cells = [spread([value(a, m, t) - value(b, m, t) for a, b in pairs], signed=True)
                     for m, t in columns]  # fmt: skip
            seeds = ", ".join(str(a["seed"]) for a, _ in pairs)
            rows.append(f"| {ARMS[arm][0]} | {seeds} | " + " | ".join(cells) + " |")
        if rows:
            lines += [
                "",
                f"Paired by seed: arm minus {ARMS[reference][0]} (points of %, mean ± sample "
                "standard deviation of the per-seed differences; seeds where both finished):",
                "",
                "| arm | seeds | mIoU | mBF @ 1 px | mBF @ 3 px | mBF @ 5 px | mBIoU @ 3 px "
                "| mBIoU Cheng |",
                "|---|---|---|---|---|---|---|---|",
                *rows,
            ]
    lines += [
        "",
        "Every run (%; s/it = training wall-clock / iterations, on a shared machine):",
        "",
        "| arm | seed | iterations | mIoU | mBF @ 3 px | mBIoU @ 3 px | mBIoU Cheng | s/it "
        "| commit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        iterations = run["recipe"]["iterations"]
        seconds = run.get("train_seconds")
        per_it = f"{seconds / iterations:.2f}" if seconds else "-"
        lines.append(
            f"| {ARMS[run['arm']][0]} | {run['seed']} | {iterations} "
            f"| {value(run, 'mIoU'):.2f} | {value(run, 'mBF'):.2f} | {value(run, 'mBIoU'):.2f} "
            f"| {value(run, 'mBIoU', 'cheng'):.2f} | {per_it} | {run['source_commit'][:7]} |"
        )
    return "\n".join(lines) + "\n"


def plot_sweep(runs: list[dict[str, Any]], path: Path) -> None:
    """mIoU and mBF (3 px) against lambda (k = 3) and k (lambda = 1); seeds as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharey="row")
    ce_styles = {
        "ce": ("grey", ":"),
        "ce_equal_compute": ("black", "--"),
        "ce_equal_compute_k7": ("tab:red", "-."),
    }
    for row, metric in enumerate(("mIoU", "mBF")):
        for col, (axis_name, pick) in enumerate(
            (
                ("λ (k = 3)", lambda a: a[2] == 3 and a[3] == "exclude" and a[1] > 0),
                ("k (λ = 1)", lambda a: a[1] == 1.0 and a[3] == "exclude"),
            )
        ):
            ax = axes[row, col]
            xs, ys, means = [], [], {}
            for run in runs:
                setting = ARMS[run["arm"]]
                if pick(setting):
                    x = setting[1] if col == 0 else setting[2]
                    xs.append(x)
                    ys.append(value(run, metric))
                    means.setdefault(x, []).append(value(run, metric))
            ax.scatter(xs, ys, color="tab:blue", alpha=0.7, label="CE + CPG, one seed")
            if means:
                keys = sorted(means)
                ax.plot(keys, [statistics.mean(means[k]) for k in keys], color="tab:blue")
            for arm, (color, style) in ce_styles.items():
                values = [value(r, metric) for r in runs if r["arm"] == arm]
                for v in values:
                    ax.axhline(v, color=color, linestyle=style, linewidth=0.8)
                if values:
                    ax.plot([], [], color=color, linestyle=style, label=ARMS[arm][0] + ", seeds")
            if col == 0:
                ax.set_xscale("log", base=2)
                ax.set_xticks([0.25, 0.5, 1, 2, 4], ["0.25", "0.5", "1", "2", "4"])
            else:
                ax.set_xticks([3, 5, 7])
            ax.set_xlabel(axis_name)
            ax.set_ylabel(f"{metric} (%)" + (" @ 3 px" if metric == "mBF" else ""))
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.suptitle("SynthCity val, LRASPP-MobileNetV3, 600 iterations (finished runs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def frame_picture(runs_dir: Path, data_root: Path, arms: list[str], path: Path) -> str:
    """Picture of the val frame where the two arms' boundary F (3 px) differs most (same
    seed); returns a one-line description."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from training.data import build_dataset
    from training.evaluate import load_checkpoint, model_from_checkpoint, predict_logits
    from training.metrics import BoundaryMetrics
    from training.transforms import eval_transforms
    from zoo.datasets import get_dataset_info

    seeds = [s for s in range(10) if all((runs_dir / f"{a}_seed{s}/eval.json").exists()
                                         for a in arms)]  # fmt: skip
    if not seeds:
        raise ValueError(f"no seed has finished runs of both {arms[0]} and {arms[1]}")
    seed = seeds[0]
    models = [
        model_from_checkpoint(load_checkpoint(runs_dir / f"{a}_seed{seed}/last.pt")).eval()
        for a in arms
    ]
    info = get_dataset_info("synthcity")
    dataset = build_dataset("synthcity", data_root, "val", eval_transforms(info.mean, info.std))
    best: tuple[float, int, list[Any], list[float]] = (-1.0, -1, [], [])
    for index in range(len(dataset)):
        image, mask = dataset[index]
        preds, scores = [], []
        for model in models:
            pred = predict_logits(model, image[None]).argmax(1)[0]
            metric = BoundaryMetrics(info.num_classes, 3)
            metric.update(pred, mask)
            preds.append(pred)
            scores.append(metric.compute()["mBF"])
        gap = abs(scores[1] - scores[0])
        if gap > best[0]:
            best = (gap, index, preds, scores)
    _, index, preds, scores = best
    image, mask = dataset[index]
    mean = torch.tensor(info.mean)[:, None, None]
    std = torch.tensor(info.std)[:, None, None]
    rgb = (image * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: info.num_classes] = np.array(info.palette, dtype=np.uint8)
    panels = [(rgb, f"val frame {index}"), (palette[mask.numpy()], "ground truth (ignore black)")]
    for arm, pred, score in zip(arms, preds, scores, strict=True):
        panels.append((palette[pred.numpy()], f"{ARMS[arm][0]}, seed {seed}: BF@3px {score:.1%}"))
    fig, axes = plt.subplots(2, 2, figsize=(9, 5.2))
    for ax, (picture, title) in zip(axes.flat, panels, strict=True):
        ax.imshow(picture)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return (
        f"val frame {index}, seed {seed}: mBF @ 3 px {scores[0]:.1%} ({ARMS[arms[0]][0]}) vs "
        f"{scores[1]:.1%} ({ARMS[arms[1]][0]})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("/work/runs/sweep"))
    parser.add_argument("--record", type=Path, help="write the runs' eval.json here (JSONL)")
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    parser.add_argument("--plot", type=Path, help="PNG of mIoU / mBF against lambda and k")
    parser.add_argument("--frame", type=Path, help="PNG of the frame where two arms differ most")
    parser.add_argument("--frame-arms", nargs=2, default=[BASELINE, "cpg_l1_k3"], choices=ARMS)
    parser.add_argument("--data-root", type=Path, help="SynthCity folder (for --frame)")
    args = parser.parse_args()
    runs = load_runs(args.runs)
    if not runs:
        parser.error(f"no finished runs (*/eval.json) under {args.runs}")
    if args.record:
        lines = [json.dumps({k: v for k, v in run.items() if k != "folder"}) for run in runs]
        args.record.write_text("\n".join(lines) + "\n")
    text = tables(runs)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.plot:
        plot_sweep(runs, args.plot)
        print(f"wrote {args.plot}")
    if args.frame:
        if args.data_root is None or not args.runs.is_dir():
            parser.error("--frame needs --data-root and a runs folder (the checkpoints)")
        import torch

        torch.set_num_threads(1)
        try:
            print(frame_picture(args.runs, args.data_root, args.frame_arms, args.frame))
        except (ValueError, FileNotFoundError) as error:
            parser.error(str(error))
        print(f"wrote {args.frame}")


if __name__ == "__main__":
    main()
