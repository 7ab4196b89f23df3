"""Running a command for a test: its own process group, killed whole on timeout."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_process(
    cmd: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run `cmd` in REPO in its own process group; on timeout the whole group is killed."""
    process = subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(cmd, process.returncode, out, err)
