"""outcore's optional parts (the ``demo``, ``bench`` and ``dev`` extras) and the one-line error when one is missing.

Why extras: a user who installs outcore to run or serve models should not get a test runner, a plotting library
and two Bibles with it. Why read the installed metadata instead of a list of modules here: pyproject.toml stays
the one declaration of what each extra holds (an extra may name another, ``outcore[demo]``, and that is followed).
"""

from __future__ import annotations

import re
from importlib import metadata

from engine.errors import UserError

DIST = "outcore"
_EXTRA = re.compile(r"""extra\s*==\s*["']([\w.-]+)["']""")
_REQ = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def requirements(extra: str) -> list[str]:
    """The distributions ``extra`` installs, other extras of outcore it names followed; [] if outcore has no
    installed metadata (a bare source tree), where nothing can be checked."""
    try:
        lines = metadata.requires(DIST) or []
    except metadata.PackageNotFoundError:
        return []
    names: list[str] = []
    for line in lines:
        req, _, marker = line.partition(";")
        m, r = _EXTRA.search(marker), _REQ.match(req)
        if not m or m[1] != extra or not r:
            continue
        if r[1] == DIST:  # another extra of outcore, e.g. bench = ["outcore[demo]", ...]
            names += [n for inner in (r[2] or "").split(",") if inner.strip() for n in requirements(inner.strip())]
        else:
            names.append(r[1])
    return list(dict.fromkeys(names))


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def missing(extra: str) -> list[str]:
    """The distributions of ``extra`` that are not installed."""
    return [name for name in requirements(extra) if not _installed(name)]


def message(extra: str, what: str) -> str:
    """The one line a user sees: what needs which extra, and the command that installs it."""
    return f"{what} needs the {extra} extra: pip install 'outcore[{extra}]' (in a clone: make setup)"


def require(extra: str, what: str) -> None:
    """Raise a :class:`UserError` naming ``extra`` when any of its distributions is missing; ``what`` is the
    command or part that needs it (``"outcore bench"``)."""
    if missing(extra):
        raise UserError(message(extra, what))
