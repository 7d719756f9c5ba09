"""Scorers, as the paper's benchmarks define them. Every scorer maps (answer text, gold) to [0, 1].

* OOLONG (``aggregate``): exact match for labels and user ids, ``0.75 ** |answer - gold|`` for numbers, dates
  parsed (month and year compared);
* OOLONG-Pairs (``pairs``): F1 over the set of unordered id pairs;
* multihop (HotpotQA-style): exact match and token F1 after SQuAD normalisation;
* codeqa: accuracy of the chosen letter;
* niah (RULER): case-insensitive substring match of the needle's value.

Answers from small models are chatty, so each scorer first isolates the answer: the text after a last
``Answer:`` marker when there is one, otherwise the whole reply.
"""

from __future__ import annotations

import calendar
import collections
import re
import string
from datetime import date
from typing import Any

_ANSWER_MARK = re.compile(r"(?:final answer|answer)\s*[:\-]\s*", re.IGNORECASE)


def answer_part(text: str) -> str:
    """The part of a reply that is the answer: after the last ``Answer:`` marker, stripped of markup."""
    parts = _ANSWER_MARK.split(text)
    out = parts[-1] if len(parts) > 1 and parts[-1].strip() else text
    return out.strip().strip("*`\"' \n.")


# ---- niah -----------------------------------------------------------------------------------------------------


def substring_match(answer: str, gold: str) -> float:
    return 1.0 if gold.lower() in answer.lower() else 0.0


# ---- OOLONG ---------------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})


def first_number(text: str) -> float | None:
    m = _NUMBER.search(text)
    if not m:
        return None
    try:
        return float(m.group(0).replace(",", ""))
    except ValueError:
        return None


def number_score(answer: str, gold: float) -> float:
    """OOLONG's partial credit for counts: 0.75 to the power of the absolute error."""
    got = first_number(answer_part(answer))
    return 0.0 if got is None else float(0.75 ** abs(got - gold))


def parse_month(text: str) -> tuple[int, int] | None:
    """(year, month) from "March 2023", "Mar 2023", "2023-03", "03/2023" or a full date in those styles."""
    t = text.lower()
    m = re.search(r"\b(\d{4})-(\d{1,2})\b", t)
    if m and 1 <= int(m.group(2)) <= 12:
        return int(m.group(1)), int(m.group(2))
    m = re.search(r"\b(\d{1,2})/(?:\d{1,2}/)?(\d{4})\b", t)
    if m and 1 <= int(m.group(1)) <= 12:
        return int(m.group(2)), int(m.group(1))
    m = re.search(r"\b([a-z]{3,9})\.?\s+(?:\d{1,2}(?:st|nd|rd|th)?,?\s+)?(\d{4})\b", t)
    if m and m.group(1) in _MONTHS:
        return int(m.group(2)), _MONTHS[m.group(1)]
    return None


def date_score(answer: str, gold: str) -> float:
    want = parse_month(gold)
    got = parse_month(answer_part(answer)) or parse_month(answer)
    return 1.0 if want is not None and got == want else 0.0


def _norm_label(text: str) -> str:
    return re.sub(r"[^a-z ]", " ", text.lower()).split(" and ")[0].strip()


def label_score(answer: str, gold: str, labels: list[str]) -> float:
    """Exact label match; a reply naming exactly one label counts as that label."""
    a = answer_part(answer).lower()
    if _norm_label(a) == _norm_label(gold) or a.strip() == gold.lower():
        return 1.0
    named = [lab for lab in labels if re.search(r"\b" + re.escape(lab.lower().split(" ")[0]) + r"\b", a)]
    return 1.0 if named == [gold] else 0.0


def exact_id(answer: str, gold: str) -> float:
    ids = re.findall(r"\b\d{4,6}\b", answer_part(answer))
    return 1.0 if ids[:1] == [gold] else 0.0


def oolong_score(answer: str, gold: dict[str, object], labels: list[str]) -> float:
    kind, value = gold["kind"], gold["value"]
    if kind == "number":
        return number_score(answer, float(str(value)))
    if kind == "date":
        return date_score(answer, str(value))
    if kind == "label":
        return label_score(answer, str(value), labels)
    return exact_id(answer, str(value))


def month_label(d: date) -> str:
    return f"{calendar.month_name[d.month]} {d.year}"


# ---- pairs ----------------------------------------------------------------------------------------------------

_PAIR = re.compile(r"\(?\s*(\d{4,6})\s*[,;&]\s*(?:and\s+)?(\d{4,6})\s*\)?")


def parse_pairs(answer: str) -> set[tuple[str, str]]:
    out = set()
    for a, b in _PAIR.findall(answer):
        if a != b:
            out.add((a, b) if int(a) < int(b) else (b, a))
    return out


def f1_sets(got: set[Any], want: set[Any]) -> float:
    """Set F1 of ``got`` against ``want`` (1.0 when both are empty)."""
    if not got and not want:
        return 1.0
    tp = len(got & want)
    if tp == 0:
        return 0.0
    p, r = tp / len(got), tp / len(want)
    return 2 * p * r / (p + r)


# ---- multihop (SQuAD / HotpotQA normalisation) ---------------------------------------------------------------


def normalize_answer(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(answer: str, gold: str) -> float:
    return 1.0 if normalize_answer(answer_part(answer)) == normalize_answer(gold) else 0.0


def token_f1(answer: str, gold: str) -> float:
    pred, want = normalize_answer(answer_part(answer)), normalize_answer(gold)
    if pred in ("yes", "no", "noanswer") or want in ("yes", "no", "noanswer"):
        return 1.0 if pred == want else 0.0
    p_toks, g_toks = pred.split(), want.split()
    common = collections.Counter(p_toks) & collections.Counter(g_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p_toks), same / len(g_toks)
    return 2 * precision * recall / (precision + recall)


# ---- codeqa ---------------------------------------------------------------------------------------------------

LETTERS = ("A", "B", "C", "D")


def choice_letter(answer: str, options: list[str]) -> str | None:
    """The option a reply picks: a standalone letter A-D first, else the one option whose text it quotes."""
    part = answer_part(answer)
    m = re.search(r"(?:^|[\s(\[])([ABCD])(?:$|[\s).:\],])", part) or re.search(r"\b([ABCD])\b", part)
    if m:
        return m.group(1)
    quoted = [LETTERS[i] for i, o in enumerate(options) if o and o in answer]
    return quoted[0] if len(quoted) == 1 else None


def choice_score(answer: str, gold: str, options: list[str]) -> float:
    return 1.0 if choice_letter(answer, options) == gold else 0.0
