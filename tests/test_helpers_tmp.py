"""Earlier runs' temporary folders are deleted before a run; a running one's stays (a live
lock, or without a lock: new folders in the last minutes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers_tmp import remove_finished_runs


def test_only_finished_runs_are_removed(tmp_path: Path) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    folders = {
        "pytest-7": None,  # no lock: its run exited normally
        "pytest-8": ended.stdout.strip(),  # its process is gone
        "pytest-9": str(os.getpid()),  # running (this process)
        "pytest-10": "garbage",
        "other": None,  # not a numbered base folder
    }
    for name, pid in folders.items():
        (tmp_path / name / "t0").mkdir(parents=True)
        (tmp_path / name / "t0" / "big.bin").write_bytes(b"x" * 1000)
        if pid is not None:
            (tmp_path / name / ".lock").write_text(pid)
    (tmp_path / "pytest-current").symlink_to(tmp_path / "pytest-9")
    hour_ago = time.time() - 3600
    for name in folders:  # made an hour ago
        for path in (tmp_path / name, *(tmp_path / name).iterdir()):
            os.utime(path, (hour_ago, hour_ago))
    (tmp_path / "pytest-11" / "popen-gw0" / "test_x0").mkdir(parents=True)  # no lock, busy
    removed = remove_finished_runs(tmp_path, idle_seconds=600)
    assert sorted(removed) == ["pytest-10", "pytest-7", "pytest-8"]
    left = ["other", "pytest-11", "pytest-9", "pytest-current"]
    assert sorted(p.name for p in tmp_path.iterdir()) == left
    assert (tmp_path / "pytest-9" / "t0" / "big.bin").is_file()
