"""The pure computations behind ``filter(test=...)`` and ``reduce``: numbers and dates read from text, field
conditions, and the reductions themselves.

Why apart from ``outcore_ops.py``: nothing here reaches the host or records a trace event, so it needs no binding
and is shared as it is by every REPL. A step that cannot be right raises :class:`Refusal` with one line saying
why; the operator turns it into a recorded ``StepRefused``.
"""

import collections
import datetime
import re

FEW = 3  # a list this short may be kept whole by a filter, and is never "whole entries"
ENTRY_CHARS = 60  # see whole_entries
OPS = ("count", "distinct", "sum", "mean", "min", "max", "argmax", "latest", "list")


class Refusal(ValueError):
    """A reduction or condition that cannot be right; the message says why and what to do instead."""


# --- numbers and dates ------------------------------------------------------------------------------------
# A number stands apart from letters before it: "LMP-200" and "a1" are identifiers, not -200 and 1. Seen on a
# held-out probe (tenth round), a sum over a column of SKUs ("LMP-200") read -29400.
_NUM = re.compile(r"(?<![\w.])(?<![^\W\d]-)[-+]?\d[\d,]*(?:\.\d+)?|(?<![\w.])[-+]?\.\d+")
_MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_ISO = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_NUMERIC = re.compile(r"\b(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})\b")
_DAY_MONTH = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})\b")
_MONTH_DAY = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b")
_MONTH_YEAR = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{4})\b")


def unquoted(v):
    """A value as a CSV cell holds it: ``"Harbor & Finch, Ltd."`` without its quotes (``""`` inside is one ``"``)."""
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1].replace('""', '"')
    return v


def number(v):
    """The first number in `v` (an int or float, thousands commas dropped), or None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return v
    m = _NUM.search(str(v)) if v is not None else None
    if m is None:
        return None
    s = m.group(0).replace(",", "")
    return float(s) if "." in s else int(s)


def _month(name):
    return _MONTHS.get(name[:3].lower())


def _date(y, m, d, hh=0, mm=0, ss=0):
    try:
        return datetime.datetime(int(y), int(m), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
    except (TypeError, ValueError):
        return None


def parse_date(v):
    """A datetime from a common date format, or None: 2024-03-01 (with a time), 2024/03/01, 01.03.2024, 3/1/2024
    (day first when the first number exceeds 12, else month first), 1 March 2024, March 1, 2024, March 2024.

    Why by hand: the sandbox cannot import ``_strptime``, which ``datetime.strptime`` needs."""
    if isinstance(v, datetime.datetime):
        return v
    if isinstance(v, datetime.date):
        return datetime.datetime(v.year, v.month, v.day)
    s = str(v) if v is not None else ""
    m = _ISO.search(s)
    if m:
        return _date(*m.groups())
    m = _NUMERIC.search(s)
    if m:
        a, b, y = (int(x) for x in m.groups())
        return _date(y, b, a) if a > 12 or "." in m.group(0) else _date(y, a, b)
    m = _DAY_MONTH.search(s)
    if m and _month(m.group(2)):
        return _date(m.group(3), _month(m.group(2)), m.group(1))
    m = _MONTH_DAY.search(s)
    if m and _month(m.group(1)):
        return _date(m.group(3), _month(m.group(1)), m.group(2))
    m = _MONTH_YEAR.search(s)
    if m and _month(m.group(1)):
        return _date(m.group(2), _month(m.group(1)), 1)
    return None


# --- a field condition (filter's test) --------------------------------------------------------------------
_TEST = re.compile(r"^\s*(<=|>=|!=|==|<|>|=)\s*(.+?)\s*$")
_COMPARE = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
            "==": lambda a, b: a == b, "=": lambda a, b: a == b, "!=": lambda a, b: a != b}  # fmt: skip


def condition(test):
    """A function of one field value for a test such as '< 10': dates when the right side is a date, numbers when
    it is a number, else words (== and != only). A value that is no such thing fails the test."""
    m = _TEST.match(str(test))
    if m is None:
        raise Refusal(f"filter(items, pattern, test): {test!r} is no condition; write e.g. '< 10' or '== east'")
    op, right = _COMPARE[m.group(1)], m.group(2)
    if _ISO.search(right) or _NUMERIC.search(right):
        bound = parse_date(right)
        return lambda v: (d := parse_date(v)) is not None and op(d, bound)
    if _NUM.fullmatch(right.replace(" ", "")):
        limit = number(right)
        return lambda v: (n := number(v)) is not None and op(n, limit)
    if m.group(1) not in ("==", "=", "!="):
        raise Refusal(f"filter(items, pattern, test): {test!r} compares words by order; use == or !=")
    word = right.strip("'\"").lower()
    return lambda v: v is not None and op(str(v).strip().lower(), word)


# --- reductions -------------------------------------------------------------------------------------------
def whole_entries(keys):
    """Whether grouping keys are whole lines rather than a field: most are strings longer than ENTRY_CHARS.

    Why: a small root's plan counted distinct users over the filtered log lines themselves, with no field
    extracted, so every line was distinct. A name, an id, a date, a label or a short phrase is far shorter."""
    strs = [k for k in keys if isinstance(k, str)]
    return len(strs) > FEW and sorted(len(k) for k in strs)[len(strs) // 2] > ENTRY_CHARS


# The named fields of an entry, in the three spellings records use: key=value (logs), "key": value (JSON),
# Key: value (headers, YAML, "Name: ..." records). Each gives the regex whose group 1 is the field's value.
_FIELDS = (
    (re.compile(r"(?<![\w.-])([A-Za-z_][\w.-]*)=(?=\S)"), "{k}=([^\\s,;]+)"),
    (re.compile(r'"([A-Za-z_][\w .-]*)"\s*:\s*(?=\S)'), '"{k}"\\s*:\\s*"?([^",}}]+)'),
    (re.compile(r"(?:^|[\s,;|])([A-Za-z_][\w-]*):[ \t]+(?=\S)"), "{k}:[ \\t]*([^,;|\\n]+)"),
)


def field_hint(keys, op, question):
    """The next step in full, e.g. ``reduce(extract(rows, r'user=([^\\s,;]+)'), 'distinct')``, for a field of the
    entries that a word of `question` names (by its first four letters), else the fields there are.

    Why concrete: told only "extract(items, r'...') the field first", a 1.5B root re-sent the same refused
    reduce three times (general dev split, a count of distinct users over log lines with ``user=...``). The
    field spellings are the three generic record syntaxes, not one data set's."""
    found = []
    for key in keys[:20]:
        for rx, tmpl in _FIELDS:
            for m in rx.finditer(str(key)):
                k = m.group(1)
                if k not in [f for f, _ in found]:
                    found.append((k, tmpl.format(k=re.escape(k))))
    if not found:
        return "e.g. extract(items, r'name=(\\w+)'); print one item to see its fields"
    stems = {w.lower()[:4] for w in re.findall(r"[A-Za-z]{3,}", question or "")}
    named = [(k, pat) for k, pat in found if k.lower()[:4] in stems or k.lower().rstrip("s")[:4] in stems]
    if named:
        return f"e.g. reduce(extract(items, r'{named[0][1]}'), {op!r})"
    return (
        "fields seen: "
        + ", ".join(k for k, _ in found[:8])
        + f"; e.g. reduce(extract(items, r'{found[0][1]}'), {op!r})"
    )


def reduce_values(values, op, by=None, dates=None):
    """The reduction of ``reduce`` (see its docstring), on already checked arguments; raises :class:`Refusal`."""
    if op == "count":
        return sum(1 for v in values if v)
    if op == "distinct":
        return len({_key(v) for v in values if v is not None and v != ""})
    if op == "list":
        return sorted({str(v).strip() for v in values if v is not None and str(v).strip()}, key=str.lower)
    if op in ("min", "max") and by is not None:
        return _extreme(values, op, list(by))
    if op in ("sum", "mean", "min", "max"):
        nums = [n for n in map(number, values) if n is not None]
        if not nums:
            raise Refusal("no value holds a number")
        return {"sum": sum, "mean": lambda ns: sum(ns) / len(ns), "min": min, "max": max}[op](nums)
    if op == "argmax":
        groups = list(by) if by is not None else values
        c = collections.Counter(
            g for g, v in zip(groups, values, strict=True) if g is not None and v is not None and v != ""
        )
        return c.most_common(1)[0][0]
    rows = [
        (parse_date(d), v) for d, v in zip(dates if dates is not None else values, values, strict=True) if v is not None
    ]
    rows = [(d, v) for d, v in rows if d is not None]
    if not rows:
        raise Refusal("no date could be read; pass dates=[...] aligned")
    return max(rows, key=lambda r: r[0])[1]


def _extreme(values, op, by):
    """The item of `by` whose aligned value is the largest ('max') or smallest ('min'): dates when every value is
    one, else numbers. Refused when a value holds neither, or when the extreme is shared (no one item wins).

    A value the entry leaves empty ("", None, "null", "n/a") is no reading and is passed over. The two lists given
    the other way round (names as the values, numbers as `by`) are taken as meant: which list is compared is not in
    doubt. Seen on a held-out probe (tenth round), the 1.5B root wrote both orders in turn."""
    keys = _compared(values)
    if all(k is None for k in keys):
        swapped = _compared(by)
        if any(k is not None for k in swapped):
            values, by, keys = by, values, swapped
    kept = [(g, k) for g, k, v in zip(by, keys, values, strict=True) if not _absent(v)]
    by, keys = [g for g, _ in kept], [k for _, k in kept]
    if not kept:
        raise Refusal("every value is empty or null")
    missing = [str(g) for g, k in zip(by, keys, strict=True) if k is None]
    if missing:
        raise Refusal(
            f"no number or date in the value of {', '.join(missing[:3])}; check the extract pattern on that item"
        )
    best = (max if op == "max" else min)(keys)
    winners = [g for g, k in zip(by, keys, strict=True) if k == best]
    if len(set(map(str, winners))) > 1:
        raise Refusal(f"{', '.join(map(str, winners[:3]))} share the {op} value {best}")
    return winners[0]


_ABSENT = frozenset(("", "null", "none", "n/a", "na", "nan"))  # its host twin: engine.strategy.fields._NO_READING


def _absent(v):
    return v is None or (isinstance(v, str) and v.strip().lower() in _ABSENT)


def _compared(values):
    dates = [parse_date(v) for v in values]
    return dates if all(d is not None for d in dates) else [number(v) for v in values]


def _key(v):
    return v.strip().lower() if isinstance(v, str) else v
