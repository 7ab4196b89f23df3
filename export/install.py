"""Putting a finished export's build folder in place of the model directory: the previous
directory's other files carried over (hard links), the umask's usual permissions."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from zoo.cards import is_zoo_card
from zoo.fileio import default_file_mode
from zoo.modelfiles import ALL_FILES, CARD_NAME, CONFIG_NAME

logger = logging.getLogger(__name__)

# Files of the previous directory that a new export does not carry over: its own outputs (a
# model file it did not write this time belonged to the old weights), the card (it describes
# the old weights: `zoo card` / `zoo push` write a new one; the README.md of a folder that held
# no model and is not a cpg-zoo card is kept) and temp files of killed writers.
NOT_CARRIED = ALL_FILES


def default_permissions(work: Path) -> None:
    """mkdtemp / mkstemp create 0700 / 0600: give the model dir the umask's usual modes."""
    file_mode = default_file_mode()
    work.chmod(file_mode | ((file_mode & 0o444) >> 2))  # r -> rx for the directory
    for path in work.iterdir():
        path.chmod(file_mode)


def carry_over(out_dir: Path, work: Path) -> None:
    """Hard-link (or copy) the files of the previous `out_dir` that export does not write
    into `work`."""
    if not out_dir.is_dir():
        return
    model_dir = (out_dir / CONFIG_NAME).is_file()
    for path in sorted(out_dir.iterdir()):
        # the README.md of a folder that held no model (say, a project's) is not a card
        own_readme = path.name == CARD_NAME and not model_dir and path.is_file()
        own_readme = own_readme and not is_zoo_card(path)
        temporary = path.name.startswith(".") and path.name.endswith(".tmp")
        if (path.name in NOT_CARRIED and not own_readme) or temporary:
            if path.name == CARD_NAME:
                logger.warning(
                    "%s: dropped the model card, it described the previous weights; write one "
                    "for these with `zoo card %s` (`zoo push` writes one if missing)",
                    out_dir,
                    out_dir,
                )
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.copytree(path, work / path.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(path, work / path.name)


def _link_or_copy(source: str | Path, destination: str | Path) -> None:
    """A hard link (same file system, the old directory is deleted next), else a copy."""
    if Path(source).is_symlink():
        shutil.copy2(source, destination, follow_symlinks=False)
        return
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
