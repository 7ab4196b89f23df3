"""A model directory on disk: the sha256 record of its model files, checked on load, and the
replacement of a whole directory by a new one that readers see as old or new, never a mix.

Record: `zoo export` writes `{"files": {name: {"sha256": ..., "bytes": ...}}}` into config.json
for the files a backend loads (`MODEL_FILES`); `zoo.load` checks the file it is about to load
(hashed once per path, size and mtime in a process). A config.json without the record (older
exports) loads with a logged warning and no check.

Replacement (`replace_dir`): the new directory is built in `.<name>.export-<pid>-<random>`
beside the target, then `target -> .<name>.old-<pid>-<random>`, `new -> target`, the old one
deleted. A process killed between the two renames leaves no target but a complete `.old`
folder: `zoo.load` reads that one (with a warning) and the next export puts it back
(`recover_leftovers`) before it starts, deleting the build folders of dead processes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoo.config import check_config_dict
from zoo.errors import ModelFileError
from zoo.fileio import file_sha256, read_json_object, write_text_atomic
from zoo.modelfiles import CONFIG_NAME, FILES_KEY, MODEL_FILES

logger = logging.getLogger(__name__)

BUILD_TAG = "export"
OLD_TAG = "old"
# (resolved path, device, inode, size, mtime_ns) -> sha256: one hash per file version.
_HASHES: dict[tuple[str, int, int, int, int], str] = {}
_WARNED_UNRECORDED: set[str] = set()


def file_record(directory: str | Path) -> dict[str, dict[str, Any]]:
    """`{name: {"sha256": hex, "bytes": size}}` of the model files present in `directory`."""
    directory = Path(directory)
    return {
        name: {"sha256": file_sha256(directory / name), "bytes": (directory / name).stat().st_size}
        for name in MODEL_FILES
        if (directory / name).is_file()
    }


def record_files(directory: str | Path) -> dict[str, dict[str, Any]]:
    """Write the `files` record of `directory`'s model files into its config.json (atomically,
    other keys and their order kept); return the record."""
    path = Path(directory) / CONFIG_NAME
    data = read_json_object(path)
    data[FILES_KEY] = file_record(directory)
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
    return data[FILES_KEY]


def verify_files(directory: str | Path, names: list[str]) -> None:
    """Check the files `names` of `directory` (those present) against config.json's record.

    Raises `ModelFileError` naming the file when its size or sha256 differs from the record or
    the record lacks it. Without a record (older exports) logs a warning once per directory.
    """
    directory = Path(directory)
    config_path = directory / CONFIG_NAME
    data = read_json_object(config_path)
    check_config_dict(data, str(config_path))
    record = data.get(FILES_KEY)
    if record is None:
        key = str(directory.resolve())
        if key not in _WARNED_UNRECORDED:
            _WARNED_UNRECORDED.add(key)
            logger.warning(
                "%s has no '%s' record (exported before model files were hashed): %s not "
                "verified; re-export the model to add the record",
                config_path,
                FILES_KEY,
                ", ".join(names),
            )
        return
    advice = "re-export or download the model again, or load with verify=False if you "
    advice += "changed the file on purpose"
    for name in names:
        path = directory / name
        if not path.is_file():
            continue  # the backend's own error says what is missing
        expected = record.get(name)
        if expected is None:
            raise ModelFileError(
                f"{path}: not in the '{FILES_KEY}' record of {config_path} (recorded: "
                f"{', '.join(record) or 'none'}), so it was not exported with this config; "
                f"{advice}"
            )
        stat = path.stat()
        if stat.st_size != expected["bytes"]:
            raise ModelFileError(
                f"{path}: {stat.st_size} bytes, but {config_path} records {expected['bytes']} "
                f"(damaged or replaced); {advice}"
            )
        actual = _sha256_once(path, stat)
        if actual != expected["sha256"]:
            raise ModelFileError(
                f"{path}: sha256 {actual[:16]}... differs from {expected['sha256'][:16]}... "
                f"recorded in {config_path} (the file was changed or damaged); {advice}"
            )


def _sha256_once(path: Path, stat: os.stat_result) -> str:
    key = (str(path.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_sha256(path)
    return _HASHES[key]


def new_build_dir(target: str | Path) -> Path:
    """An empty folder `.<name>.export-<pid>-<random>` beside `target` to build a new one in."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.{BUILD_TAG}-{os.getpid()}-"
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix))


def _reached(step: str) -> None:
    """Called after each step of `replace_dir` ("old-moved-aside", "new-moved-in"); tests
    replace it to fault the replacement at that step."""


def replace_dir(new: str | Path, target: str | Path) -> None:
    """Make the complete directory `new` (a sibling of `target`) be `target`, replacing any
    existing `target` whole: two renames, with the old one kept aside until the second is done.

    An exception between the renames puts the old directory back; a killed process leaves it
    aside for `recover_leftovers` (and `interrupted_replacement` for readers).
    """
    new, target = Path(new), Path(target)
    if target.is_symlink():  # replace the directory it points to, keep the link
        target = target.resolve()
    _fsync_tree(new)
    if not target.exists():
        os.rename(new, target)
        _fsync_dir(target.parent)
        return
    old = Path(
        tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.{OLD_TAG}-{os.getpid()}-")
    )
    os.rename(target, old)  # onto the empty placeholder: an atomic unique name
    try:
        _reached("old-moved-aside")
        os.rename(new, target)
        _fsync_dir(target.parent)
    except BaseException:
        if not target.exists():
            os.rename(old, target)
        raise
    _reached("new-moved-in")
    _remove(old)


def _leftovers(target: Path, tag: str) -> list[Path]:
    """Folders `.<name>.<tag>-<pid>-*` beside `target` whose process is gone, newest first."""
    if not target.parent.is_dir():
        return []
    prefix = f".{target.name}.{tag}-"
    found = [
        path
        for path in target.parent.iterdir()
        if path.name.startswith(prefix)
        and (path.is_dir() or path.is_symlink())
        and not _owner_alive(path, prefix)
    ]
    return sorted(found, key=lambda path: path.stat().st_mtime_ns, reverse=True)


def _owner_alive(path: Path, prefix: str) -> bool:
    pid_text = path.name[len(prefix) :].partition("-")[0]
    if not pid_text.isdigit():
        return False  # not ours (e.g. an older export's mkdtemp folder): a leftover
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # another thread of this process may be exporting
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # alive, under another user
    return True


def recover_leftovers(target: str | Path) -> list[str]:
    """Clean up what killed replacements of `target` left: put a complete old directory back
    when `target` is missing, delete other old and build folders of dead processes. Returns
    a line per action (for logs)."""
    target = Path(target)
    actions = []
    for old in _leftovers(target, OLD_TAG):
        if not target.exists() and (old / CONFIG_NAME).is_file():
            os.rename(old, target)
            actions.append(f"restored {target} from {old.name} (an export was killed mid-swap)")
        else:
            _remove(old)
            actions.append(f"removed {old.name}")
    for build in _leftovers(target, BUILD_TAG):
        _remove(build)
        actions.append(f"removed {build.name}")
    for action in actions:
        logger.log(logging.WARNING if action.startswith("restored") else logging.INFO, action)
    return actions


def interrupted_replacement(target: str | Path) -> Path | None:
    """For a missing `target`: the complete old directory a replacement killed between its two
    renames left beside it (what readers should see until the next export), else None."""
    target = Path(target)
    if target.exists() or not target.parent.is_dir():
        return None
    prefix = f".{target.name}.{OLD_TAG}-"
    olds = [
        path
        for path in target.parent.iterdir()
        if path.name.startswith(prefix) and (path / CONFIG_NAME).is_file()
    ]
    if not olds:
        return None
    old = max(olds, key=lambda path: path.stat().st_mtime_ns)
    logger.warning(
        "%s is missing: an export into it was interrupted; reading the previous directory %s "
        "(the next `zoo export` into %s puts it back)",
        target,
        old,
        target,
    )
    return old


def _remove(path: Path) -> None:
    """Delete a folder tree, or a link (a replaced `target` may have been one)."""
    if path.is_symlink():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _fsync_tree(directory: Path) -> None:
    """Flush every file under `directory` (and the folders) to disk before it is swapped in."""
    for root, _, names in os.walk(directory):
        for name in names:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                handle = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(handle)
                finally:
                    os.close(handle)
        _fsync_dir(Path(root))
