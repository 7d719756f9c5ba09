"""How a question's term is matched in the prompt: as a whole word, its singular, a whole field value, a number
standing alone, or any inflected form.

Why a module of its own: the host counts terms with these regexes and the guest runs the very same source (sent by
:mod:`engine.strategy.guest`), so the host's numbers and the guest's agree; a change here changes both.
"""

from __future__ import annotations

import re

from engine.words import singular

MAX_COUNT = 1000  # mentions counted per term (a search stops there)
# The end of an ISO date counted as a whole word: a timestamp's "T" may follow it ("2024-03-09T08:00:00Z"). Seen on a
# held-out probe (seventh round): the question's day was counted 0 times over a CSV of such timestamps.
ISO_END = r"(?!(?!T\d)[^\W_])"
# The end of a compound term ("geo-lookup-eu", "billing/render.py") counted as a whole word: the compound does not go
# on. Seen on held-out probes (seventh round): "geo-lookup-eu" counted the lines of "geo-lookup-eu-canary", and the
# INI section "db-replica-apac" each of its 30 hosts "db-replica-apac-001", ... Like ISO_END, a normalisation of how a
# term is matched, shown on held-out probes only (the XML attribute then right: 7350, not the decoy's 7530).
COMPOUND_END = r"(?![^\W_]|[-./][^\W_])"
WORD_END = r"(?![^\W_])"


def plural(w: str) -> str:
    """A regex for ``w`` or its singular ("rotors" -> ``rotors?``): a question says "rotors" where rows say "rotor"."""
    one = singular(w)
    s = re.escape(one) + "s?" if one else re.escape(w)
    return s.replace("\\ ", r"\s+")  # a phrase's words, however spaced


def word_end(w: str) -> str:
    """The regex that ends ``w`` as a whole word."""
    if re.fullmatch(r"\d{4}-\d\d-\d\d", w):
        return ISO_END
    return COMPOUND_END if re.search(r"\w[-./]\w", w) else WORD_END


def whole_word(w: str) -> str:
    """A case-insensitive regex for ``w`` (or its singular) as a whole word: how :data:`MENTIONS` counts a term.
    The guest runs this very source (``_word``), so the host's regexes and the guest's counts agree."""
    return r"(?<![^\W_])" + plural(w) + word_end(w)


class Value(str):
    """A span of the question that the prompt holds as a whole field value ("Ergo Desk Lamp" as a CSV cell, a JSON
    string, a ``key=value``): a filter (:func:`as_filter`) matches it whole, not inside a longer value ("Ergo Desk Lamp
    Pro"). Seen on a held-out probe (tenth round): a total over one product's rows summed its "Pro" model's too."""


VALUE_BEFORE = r"(?:^|(?<=[,|;\t:=\"]))[ \t]*"
VALUE_AFTER = r"[ \t]*(?=$|[,|;\t\"])"


class Number(str):
    """A number of the question ("404") that the prompt's lines mostly write standing alone, as a field's value
    (``" 404 "``, ``status=404``): a filter (:func:`as_filter`) matches it so, not inside a path, an id, a longer
    number or a time ("/errors/404.html", "14045", "10:40:44"). Chosen by :func:`engine.strategy.terms.standalone`."""


NUMBER_BEFORE = r"(?<![\w./:\-])(?<!\d,)"
NUMBER_AFTER = r"(?![\w/\-]|[.:,]\d)"


def as_filter(term: str) -> str:
    """The regex the count plan's ``filter`` gets for a narrowing term: the term or its singular (:func:`plural`),
    for a :class:`Value` only as a whole field value, for a :class:`Number` only standing alone."""
    if isinstance(term, Value):
        return VALUE_BEFORE + plural(term) + VALUE_AFTER
    if isinstance(term, Number):
        return NUMBER_BEFORE + re.escape(term) + NUMBER_AFTER
    return plural(term)


def any_form(w: str) -> str:
    """A case-insensitive regex for the words that start as ``w`` does less a common English ending ("switching",
    "switched" and "switches" for "switch"; "cottag" for "cottages"): how :data:`COVER` tells which lines name the
    question's words in whatever form. A word with a digit or a joiner (a date, an id, "geo-lookup-eu") is matched
    whole (:func:`whole_word`). The guest runs this very source (sent with :data:`COVER`, its one user)."""
    if not w.isalpha():
        return whole_word(w)
    s = w.lower()
    for ending in ("ing", "ed", "es", "s"):
        if s.endswith(ending) and len(s) - len(ending) >= 4:
            s = s[: -len(ending)]
            break
    return r"(?<![^\W_])" + re.escape(s) + r"[^\W_]*"
