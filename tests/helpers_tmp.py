"""Space for the test run: earlier runs' temporary folders go before a new run starts.

pytest keeps the base folder of a failed run (`tmp_path_retention_policy = "failed"`), and
deletes old ones only when a run ends; the export tests write up to ~1 GB each, and a CI
machine's /tmp once filled up with kept runs before the suite began.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

NUMBERED = re.compile(r"pytest-\d+")


def numbered_temp_root() -> Path | None:
    """The folder pytest numbers its base folders in (`<tmp>/pytest-of-<user>`), if any."""
    try:
        user = getpass.getuser()
    except (ImportError, KeyError, OSError):
        return None
    temp = os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir()
    root = Path(temp) / f"pytest-of-{user}"
    return root if root.is_dir() else None


def _running(folder: Path) -> bool:
    """Whether the run that made `folder` is still going (its .lock names a live process)."""
    try:
        pid = int((folder / ".lock").read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recently_used(folder: Path, seconds: float) -> bool:
    """Whether `folder` or a folder in it changed in the last `seconds`: a run without a lock
    (another project's, with retention "none") is still making test folders there."""
    newest = 0.0
    for path in (folder, *folder.iterdir()):
        try:
            newest = max(newest, path.stat().st_mtime)
        except OSError:
            continue
    return newest > time.time() - seconds


def remove_finished_runs(root: Path, idle_seconds: float = 1800) -> list[str]:
    """Delete the numbered base folders in `root` whose runs have ended (no live lock, nothing
    new for `idle_seconds`); their names."""
    removed = []
    for folder in sorted(root.iterdir()):
        numbered = NUMBERED.fullmatch(folder.name) and folder.is_dir()
        if numbered and not folder.is_symlink() and not _running(folder):
            if _recently_used(folder, idle_seconds):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed
