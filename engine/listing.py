"""The options a question lists in its own words: "positive, negative or mixed", "'bug report', 'feature request'
or 'praise'", "sport; politics; science" after a colon.

Why apart: a listed option is what a category count labels by (:mod:`engine.strategy.categories`), and naming one
is an answer, not a restatement of the question (:mod:`engine.grounding`); both read the list the same way.
"""

from __future__ import annotations

import re

from wasm_sandbox.operators import STOP_WORDS as FUNCTION_WORDS  # not the task words: "question" may be an option

MIN_OPTIONS = 3  # two options are a choice between named things (engine.strategy.compare), not a list
MAX_OPTION_WORDS = 3
_ARTICLES = ("a", "an", "the")
_QUOTE = r"""['"\u2018\u201c]([^'"\u2018\u2019\u201c\u201d\n]{1,48})['"\u2019\u201d]"""
_JOIN = r"\s*(?:[,;/]\s*(?:(?:or|and)\s+)?|\s(?:or|and)\s+)"  # between two options: ", " "; " " or " ", and "
_ARTICLE = r"(?:(?:a|an|the)\s+)?"  # "a 'bug report', a 'feature request' or 'praise'"
_QUOTED_LIST = re.compile(rf"{_ARTICLE}{_QUOTE}(?:{_JOIN}{_ARTICLE}{_QUOTE}){{{MIN_OPTIONS - 1},}}", re.IGNORECASE)
_WORD = r"(?!(?:or|and)\b)[A-Za-z][\w'-]*"  # a word of an option; "or" and "and" join them
_ITEM = rf"{_WORD}(?: {_WORD}){{0,{MAX_OPTION_WORDS - 1}}}"
_PLAIN_LIST = re.compile(rf"{_ITEM}(?:{_JOIN}{_ITEM}){{{MIN_OPTIONS - 1},}}", re.IGNORECASE)
_SPLIT = re.compile(_JOIN, re.IGNORECASE)


def listed(question: str) -> tuple[list[str], tuple[int, int]] | None:
    """The longest list of options the question writes, with its span; quoted options first, whole."""
    m = _QUOTED_LIST.search(question)
    if m:
        opts = [q.strip() for q in re.findall(_QUOTE, m.group(0))]
        return opts, m.span()
    best: tuple[list[str], tuple[int, int]] | None = None
    for m in _PLAIN_LIST.finditer(question):
        seps = list(_SPLIT.finditer(question, m.start(), m.end()))
        bounds = [m.start(), *(x for sep in seps for x in sep.span()), m.end()]
        if any(re.search(r"\b(?:or|and)\b", sep.group(0)) for sep in seps[:-1]):
            continue  # "or" / "and" joins only the last option: "A and B, tell me which" lists nothing
        parts = [(bounds[k], question[bounds[k] : bounds[k + 1]]) for k in range(0, len(bounds), 2)]
        first = " ".join(_trailing_content(parts[0][1].split()))  # "each review is positive" -> "positive"
        opts, end = [first], parts[0][0] + len(parts[0][1])
        for at, part in parts[1:]:
            words = _trim_article(part.split())
            lead = " ".join(_leading_content(words))  # "mixed in tone" -> "mixed": the list ends there
            if lead:
                opts.append(lead)
                end = at + part.index(lead) + len(lead)
            if len(lead.split()) < len(words):
                break
        if first and first[0].islower() and all(o[0].isupper() for o in opts[1:]):
            opts = opts[1:]  # names written alike, and the words before them: "the larger budget, Tundra Weber or ..."
        if first and len(opts) >= MIN_OPTIONS and (best is None or len(opts) > len(best[0])):
            best = opts, (question.index(opts[0], parts[0][0]), end)
    return best


def _trailing_content(words: list[str]) -> list[str]:
    out: list[str] = []
    for w in reversed(words):
        if w.lower() in FUNCTION_WORDS:
            break
        out.insert(0, w)
    return out


def _leading_content(words: list[str]) -> list[str]:
    words = _trim_article(words)
    out: list[str] = []
    for w in words:
        if w.lower() in FUNCTION_WORDS:
            break
        out.append(w)
    return out


def _trim_article(words: list[str]) -> list[str]:
    return words[1:] if words and words[0].lower() in _ARTICLES else words
