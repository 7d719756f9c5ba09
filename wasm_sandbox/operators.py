"""The prompt-level halves of the typed operators: ``terms`` (rarity-ranked words) and ``find`` (passages).

Why on the host: both read the whole prompt (up to 40 M characters); a native pass over it costs a fraction of a
second here and would cost guest memory and several times the CPU inside the sandbox. Neither uses a model, so they
live next to ``search`` and ``retrieve``; the guest wraps them (``outcore_ops.py``), checks their results and
records them in the run's trace.

Rarity, not typography: a question's distinctive words are the ones that are rare *in this prompt*. Seen: "What is
the access code assigned to the cobalt badger vault?" over a source dump; the typographic rule (hyphens first, then
capitals, then long words) offered "access", which occurs thousands of times, while "cobalt", "badger" and "vault"
occur once each. Counting them in the prompt ranks them right on any text, whatever their spelling.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from .retrieval import MAX_PASSAGE, retrieve

if TYPE_CHECKING:
    from .prompt import Prompt

MAX_TERMS = 20
MAX_FIND = 50
# Function words and question words. Why a list at all when rarity ranks words: in a short prompt "which" or
# "does" can occur once or twice and tie with the real key words; these never name what a question is about.
STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing done down during each either else ever every few for from
    further get gets got had has have having he her here hers him his how i if in into is it its itself just
    let me more most much must my no nor not now of off on once one only or other our ours out over own per
    please same shall she should so some such than that the their theirs them then there these they this those
    through to too under until up upon us very was we were what whatever when where whether which while who
    whom whose why will with within without would yes yet you your yours""".split()
)
_WORD = re.compile(r"[^\W_]+(?:[-'.:/][^\W_]+)*", re.UNICODE)


def candidate_words(text: str) -> list[str]:
    """The words of ``text`` worth counting, in order, lowercased, without stop words and repeats.

    A compound such as ``glossy-harbor`` or ``2025-03-11`` is kept whole and its parts are candidates too, so
    it ranks as one key when the prompt spells it the same way and by its parts when it does not.
    """
    out: list[str] = []
    seen: set[str] = set()
    for m in _WORD.finditer(text):
        whole = m.group(0).lower().strip("'")
        parts = [whole] + ([p for p in re.split(r"[-'.:/]", whole) if p] if re.search(r"[-'.:/]", whole) else [])
        for w in parts:
            if w in seen or w in STOP_WORDS or (len(w) < 2 and not w.isdigit()):
                continue
            seen.add(w)
            out.append(w)
    return out


def _stem(word: str) -> str:
    import Stemmer

    return str(Stemmer.Stemmer("english").stemWord(word))


def count_words(text: str, words: list[str]) -> dict[str, tuple[str, int]]:
    """word -> (the form found in ``text``, its number of occurrences), for the words that occur.

    A word counts where it occurs whole (case-insensitive, not inside a longer word). One that never does is
    looked up by its Snowball stem as a prefix ("managers" finds "manager"), and then the form returned is the
    most common spelling the text has, so a search for it finds something. All words are counted in one pass.
    """
    if not words or not text:
        return {}
    stems = {w: _stem(w) for w in words}
    keys = sorted({*words, *(s for s in stems.values() if len(s) >= 3)}, key=len, reverse=True)
    rx = re.compile(r"(?<![^\W_])(?:" + "|".join(map(re.escape, keys)) + r")[^\W_]*", re.IGNORECASE)
    found: Counter[str] = Counter(m.group(0).lower() for m in rx.finditer(text))
    out: dict[str, tuple[str, int]] = {}
    for w in words:
        if found.get(w):
            out[w] = (w, found[w])
            continue
        s = stems[w]
        forms = {f: c for f, c in found.items() if len(s) >= 3 and f.startswith(s)}
        if forms:
            best = max(sorted(forms), key=forms.__getitem__)
            out[w] = (best, sum(forms.values()))
    return out


def rank_terms(prompt_text: str, text: str, n: int) -> list[list[Any]]:
    """[[term, count], ...]: the words of ``text`` that occur in the prompt, rarest first (ties: first asked).

    Words absent from the prompt are dropped: a search for them can only fail.
    """
    n = max(1, min(int(n), MAX_TERMS))
    words = candidate_words(text)
    counts = count_words(prompt_text, words)
    ranked = sorted((c, i, form) for i, (form, c) in enumerate(counts[w] for w in words if w in counts))
    out: list[list[Any]] = []
    seen: set[str] = set()
    for c, _i, form in ranked:
        if form not in seen:
            seen.add(form)
            out.append([form, c])
    return out[:n]


def terms(prompt: Prompt, text: str, n: int) -> list[list[Any]]:
    """The host call ``terms``: :func:`rank_terms` over the whole prompt."""
    if not str(text).strip():
        return []
    return rank_terms(prompt.text(), str(text), n)


def find(prompt: Prompt, query: str, k: int, use_regex: bool, timeout: float) -> dict[str, Any]:
    """The host call ``find``: ``{"passages": [[pos, text], ...], "counts": [[term, count], ...]}``.

    regex: the lines holding a case-insensitive match (one passage per line, at most :data:`MAX_PASSAGE`
    characters). Else the BM25 passages for the query (rarity-weighted by construction). ``counts`` says how often
    each of the query's words occurs in the prompt, so an empty result can say why.
    """
    k = max(1, min(int(k), MAX_FIND))
    query = str(query)
    if not query.strip():
        raise ValueError("find(query): the query is empty; pass a word, a phrase or a regex")
    if use_regex:
        hits = _regex_lines(prompt, query, k, timeout)
    else:
        hits = [list(h) for h in retrieve(prompt, prompt.tools().index, query, k, timeout, MAX_PASSAGE)]
    counts = [] if hits else _query_counts(prompt, query)
    return {"passages": hits, "counts": counts}


def _regex_lines(prompt: Prompt, pattern: str, k: int, timeout: float) -> list[list[Any]]:
    """One passage per matching line (a line longer than MAX_PASSAGE: the window around the match)."""
    out: list[list[Any]] = []
    seen: set[int] = set()
    for pos, _snip in prompt.search(pattern, max_hits=k * 20, width=0, ignore_case=True, timeout=timeout):
        line_no, line = prompt.line_at(pos)
        if line_no in seen:
            continue
        seen.add(line_no)
        start = _line_start(prompt, line_no)
        if len(line) > MAX_PASSAGE:
            a = max(start, pos - MAX_PASSAGE // 2)
            line = line[a - start : a - start + MAX_PASSAGE]
            start = a
        out.append([start, line])
        if len(out) >= k:
            break
    return out


def _line_start(prompt: Prompt, line_no: int) -> int:
    """Character offset where line ``line_no`` starts."""
    return prompt.byte_to_char(int(prompt._starts()[line_no]))


def _query_counts(prompt: Prompt, query: str) -> list[list[Any]]:
    words = candidate_words(re.sub(r"[\\^$*+?{}\[\]()|]", " ", query))[:MAX_TERMS]
    counts = count_words(prompt.text(), words)
    return [[w, counts[w][1] if w in counts else 0] for w in words]
