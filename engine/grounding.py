"""Whether an answer is supported by the text a run read: one rule shared by the operators and the loop's finish.

Why: ungrounded answers were the common way for a small model to be wrong with confidence (issue 17): the worker
answered from passages that did not mention the question's subject, "None" was accepted as an answer, and an
invented "1234" ended a run as ``final``. Two checks catch all three: the answer (or its key span: its numbers and
most of its content words) occurs in the evidence, and the evidence mentions at least one of the question's
distinctive terms. Non-answers ("None", "not found", "unknown", empty) are never grounded.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s+")
NOT_FOUND = "NOT FOUND"

# whole replies that say "no answer" (compared after lower-casing and stripping punctuation)
_NON_ANSWERS = frozenset(
    {
        "",
        "none",
        "null",
        "nil",
        "nan",
        "n/a",
        "na",
        "not found",
        "none found",
        "unknown",
        "no answer",
        "nothing",
        "not available",
        "not applicable",
        "not mentioned",
        "not stated",
        "not specified",
        "not given",
        "no information",
        "i don't know",
        "i do not know",
        "unanswerable",
        "cannot be determined",
        "undefined",
        "[]",
        "{}",
        "()",
    }
)
# phrases with which a reply says the text does not hold the answer
_NO_INFO = re.compile(
    r"\bnot found\b|\bdoes not (?:contain|mention|say|state|specify|provide|include|give)\b|"
    r"\bdoesn't (?:contain|mention|say|state|specify|provide|include|give)\b|\bno (?:information|mention)\b|"
    r"\bnot (?:mentioned|stated|specified|provided|given) in\b|\bcannot (?:be )?(?:determined|found|answer)\b|"
    r"\bthere is no\b.*\b(?:text|passage|context)\b",
    re.IGNORECASE,
)
# words too common to be the key of an answer or of a question ("the", "is", ...)
STOP_WORDS = frozenset(
    "a an the of in on at to for from with by about into onto over under than then this that these those there "
    "their them they he she it his her its our your my we you i me us and or nor but not no yes be been being am "
    "is are was were have has had do does did can could would should will shall may might must what which who "
    "whom whose when where why how as if so such any all each every some many much more most other one also just "
    "only very please answer question text context give tell find number named called".split()
)


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text.strip().lower())


def is_non_answer(text: str) -> bool:
    """True for a reply that says no answer: empty, "None", "not found", "unknown", "the text does not say"."""
    t = _norm(str(text)).strip(" .!\"'`*:;,")
    if t in _NON_ANSWERS:
        return True
    return bool(_NO_INFO.search(t)) and len(t) < 300


def content_words(text: str) -> list[str]:
    """The words of ``text`` that can carry meaning: not stop words, and numbers or at least three characters."""
    out: list[str] = []
    for w in _WORD.findall(text.lower()):
        if w in STOP_WORDS or (len(w) < 3 and not w.isdigit()):
            continue
        if w not in out:
            out.append(w)
    return out


def restates(answer: str, question: str) -> bool:
    """Whether ``answer`` only repeats the question: three or more content words, nearly all of them the question's.

    Why three: a one- or two-word answer may well share a word with its question ("the blue door" for "which
    door"), a sentence made of the question's words says nothing new.
    """
    words = content_words(answer)
    if len(words) < 3:
        return _norm(answer).rstrip("?.") == _norm(question).rstrip("?.") and bool(words)
    asked = set(content_words(question))
    return sum(w in asked for w in words) >= 0.8 * len(words)


def _occurs(word: str, text: str) -> bool:
    return re.search(rf"(?<![^\W_]){re.escape(word)}(?![^\W_])", text) is not None


def span_occurs(answer: str, evidence: str) -> bool:
    """The answer, or its key span, occurs in ``evidence``: verbatim, or every number and most content words."""
    a, ev = _norm(answer).strip(" .\"'`"), _norm(evidence)
    if not a:
        return False
    if a in ev:
        return True
    words = content_words(a)
    if not words:
        return False
    numbers = [w for w in words if any(c.isdigit() for c in w)]
    if not all(_occurs(n, ev) for n in numbers):
        return False
    return sum(_occurs(w, ev) for w in words) >= 0.6 * len(words)


def grounded(answer: str, evidence: str, terms: list[str]) -> tuple[bool, str]:
    """(True, "") when ``answer`` is supported by ``evidence``; else (False, the reason in one line).

    Supported: not a non-answer, its key span occurs in the evidence (:func:`span_occurs`), and the evidence
    mentions at least one of ``terms`` (the question's distinctive words; no terms: that check is skipped).
    """
    if is_non_answer(answer):
        return False, f"{clip(answer)!r} is not an answer"
    if not span_occurs(answer, evidence):
        return False, f"{clip(answer)!r} occurs in none of the text read"
    ev = evidence.lower()
    if terms and not any(_occurs(t.lower(), ev) for t in terms):
        return False, f"the text read mentions none of the question's terms ({', '.join(terms[:6])})"
    return True, ""


def clip(text: str, n: int = 80) -> str:
    t = _SPACE.sub(" ", str(text)).strip()
    return t if len(t) <= n else t[: n - 3] + "..."
