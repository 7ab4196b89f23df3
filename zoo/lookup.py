"""One way to look a name up in a table: an unknown name lists the valid ones.

Used by every table of the project (architectures, datasets, registry ids, recipes, layouts,
splits), so that all of them answer a typo the same way:
`unknown arch 'unet' (did you mean ...?); valid archs: deeplabv3_mbv3, deeplabv3_r50, ...`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


def unknown_name_error(
    name: object, valid: Iterable[str], kind: str, plural: str | None = None, where: str = ""
) -> ValueError:
    """The ValueError for `name` missing from `valid`: close matches first, then all names.

    `kind` names what the names are ("arch", "dataset"); `plural` defaults to `kind + "s"`;
    `where` follows the name ("unknown split 'x' for ade20k").
    """
    names = sorted(valid)
    close = difflib.get_close_matches(name, names, n=3) if isinstance(name, str) else []
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    where = f" {where}" if where else ""
    return ValueError(
        f"unknown {kind} {name!r}{where}{hint}; valid {plural or kind + 's'}: {', '.join(names)}"
    )


def lookup(
    table: Mapping[str, T], name: str, kind: str, plural: str | None = None, where: str = ""
) -> T:
    """`table[name]`; a ValueError naming `name` and the valid keys when it is missing
    (arguments as in `unknown_name_error`)."""
    try:
        return table[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise unknown_name_error(name, table, kind, plural, where) from None
