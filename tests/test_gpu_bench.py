"""`bench/gpu.py --device cpu --quick` runs every section's code path, so the GPU script
cannot rot between the (rare) runs on a GPU machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_bench_quick_on_cpu(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "bench/gpu.py", "--device", "cpu", "--quick", "--out", str(tmp_path),
         "--sections", "loss", "train", "inference"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    sections = report["sections"]
    assert sorted(sections) == ["inference", "loss", "train"]
    errors = [row for rows in sections.values() for row in rows if "error" in row]
    assert not errors, errors
    paths = {row["loss"] for row in sections["loss"]}
    assert {"ce", "cpg k=3 sparse", "cpg k=3 dense"} <= paths
    assert {(row["loss"], row["channels_last"]) for row in sections["train"]} == {
        ("ce", False), ("cpg", False), ("cpg", True)
    }
    assert {row["precision"] for row in sections["inference"]} == {"fp32", "bf16"}
    assert "## train" in (tmp_path / "gpu.md").read_text()
