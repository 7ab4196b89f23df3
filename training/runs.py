"""A training run folder: the trainer's own files, reading its checkpoints, its metrics log.

`zoo train --out DIR` writes `last.pt` (the previous one kept as `last.prev.pt`), `best.pt`,
`metrics.jsonl`, `run.json` and `tb/`. A folder holding any of them holds a run: a new run
there is refused unless the old one is resumed or cleared (`clear_run`, which removes those
files only). Resume reads `last.pt` and falls back to `last.prev.pt` when `last.pt` is
unreadable (a kill mid-write on a file system without atomic rename, a disk error, a file
someone replaced).
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from training.checkpoints import load_checkpoint
from zoo.fileio import json_safe

__all__ = [
    "BEST",
    "LAST",
    "METRICS",
    "PREVIOUS",
    "RESUME_SAFE_KEYS",
    "RUN_FILES",
    "ResumePoint",
    "append_record",
    "changed_keys",
    "clear_run",
    "find_resume_point",
    "holds_run",
    "read_records",
    "record_line",
    "start_logging",
    "trim_records",
]

LAST, PREVIOUS, BEST = "last.pt", "last.prev.pt", "best.pt"
METRICS, RUN_INFO, TENSORBOARD = "metrics.jsonl", "run.json", "tb"
INIT_REPORT = "init.json"  # what fine-tuning (init=) kept and re-initialised
# Everything the trainer writes into a run folder (temp files of atomic writes aside).
RUN_FILES = (LAST, PREVIOUS, BEST, METRICS, RUN_INFO, TENSORBOARD, INIT_REPORT)

# Recipe keys an override may change on resume: they change where and how fast a run goes
# and how often it reports, not the experiment (the GPU-speed settings may change the last
# bits of the weights, as a different GPU would). Any other change (lr, iterations, loss
# weights, batch, crop, amp, ...) makes the result a different experiment.
RESUME_SAFE_KEYS = (
    "device",
    "workers",
    "threads",
    "eval_interval",
    "checkpoint_interval",
    "log_interval",
    "channels_last",
    "cudnn_benchmark",
    "compile",
)


def holds_run(out_dir: str | Path) -> list[str]:
    """The trainer's files present in `out_dir` (empty: no run there)."""
    out = Path(out_dir)
    return [name for name in RUN_FILES if (out / name).exists()]


def clear_run(out_dir: str | Path) -> None:
    """Remove the trainer's files and folders from `out_dir` (and leftover temp files of its
    atomic writes); anything else in the folder stays."""
    out = Path(out_dir)
    for name in RUN_FILES:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        for temp in out.glob(f".{name}.*.tmp"):
            temp.unlink(missing_ok=True)


@dataclass
class ResumePoint:
    """The checkpoint a resumed run continues from, and the unreadable ones passed over."""

    path: Path
    checkpoint: dict[str, Any]
    skipped: list[str] = field(default_factory=list)


def find_resume_point(out_dir: str | Path) -> ResumePoint | None:
    """`last.pt` of `out_dir`, or `last.prev.pt` if `last.pt` is missing or unreadable; None
    if neither exists. ValueError naming every file tried if none loads."""
    out = Path(out_dir)
    candidates = [out / LAST, out / PREVIOUS]
    if not any(path.exists() for path in candidates):
        return None
    problems: list[str] = []
    for path in candidates:
        if not path.exists():
            continue
        try:
            return ResumePoint(path, load_checkpoint(path), problems)
        except ValueError as error:
            problems.append(str(error))
    raise ValueError("cannot resume: " + "; ".join(problems))


def changed_keys(before: Any, after: Any) -> list[str]:
    """Names of the dataclass fields whose values differ between two recipes."""
    return [f.name for f in fields(before) if getattr(before, f.name) != getattr(after, f.name)]


def record_line(record: dict[str, Any]) -> str:
    """One metrics-log line: strict JSON (NaN and inf written as null) and a newline."""
    return json.dumps(json_safe(record), allow_nan=False) + "\n"


def append_record(path: str | Path, record: dict[str, Any]) -> None:
    """Append `record_line(record)` to the log at `path`."""
    with open(path, "a") as file:
        file.write(record_line(record))


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics log; lines that are not JSON objects (the torn last line of
    a kill during an append) are dropped with a warning on stderr."""
    records: list[dict[str, Any]] = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            print(f"warning: {path} line {number} is not a JSON record (dropped)", file=sys.stderr)
            continue
        records.append(record)
    return records


def trim_records(path: Path, iteration: int) -> None:
    """On resume: drop the records of iterations after `iteration` (the checkpoint's) from
    the metrics log at `path`."""
    from zoo.fileio import write_text_atomic

    if not path.is_file():
        return
    kept = [r for r in read_records(path) if r.get("iteration", 0) <= iteration]
    write_text_atomic(path, "".join(record_line(record) for record in kept))


def start_logging(
    out_dir: Path, run_info: dict[str, Any], iteration: int, iterations: int, bar: str | None
) -> tuple[Any, Any]:
    """Write `run.json`; return a TensorBoard writer on `tb/` (steps after `iteration`
    purged) and a tqdm bar named `bar` (None: no bar)."""
    from torch.utils.tensorboard import SummaryWriter

    from zoo.fileio import write_text_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "run.json", json.dumps(run_info, indent=2) + "\n")
    writer = SummaryWriter(str(out_dir / "tb"), purge_step=iteration or None)
    if bar is None:
        return writer, None
    from tqdm import tqdm

    return writer, tqdm(
        total=iterations, initial=iteration, desc=bar, dynamic_ncols=True, mininterval=2.0
    )
