"""Words as every check compares them: folded (case, accents), split into content words, and the options a
question offers. One place, so that grounding, the answer-kind checks and the strategy layer agree on what "the
same word" is.
"""

from __future__ import annotations

import re
import unicodedata

from engine.listing import listed
from wasm_sandbox.operators import STOP_WORDS as FUNCTION_WORDS

WORD = re.compile(r"[^\W_]+", re.UNICODE)


def fold(text: str) -> str:
    """``text`` in lower case without accents: "Tomás" and "Tomas" are one name to a check of what a text holds.

    Why: seen on a held-out probe (a `git log --stat`), the worker named the right author as "Tomas Ortega" and the
    reading refused it, since the log writes "Tomás". No family of the general suite writes accents: shown on that
    probe only."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def norm(text: str) -> str:
    return " ".join(WORD.findall(fold(text)))


def has_word(word: str, seen: str) -> bool:
    return re.search(rf"(?<![^\W_]){re.escape(word)}(?![^\W_])", seen) is not None


def singular(w: str) -> str | None:
    """The singular a plural term is also matched by ("rotors" -> "rotor"), or None: a question says "rotors" where
    rows say "rotor". The one rule for the host's term search (:func:`engine.strategy.patterns.plural`, which the guest
    runs as source) and for grounding (:func:`names_term`), so that they agree."""
    return w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else None


def names_term(term: str, seen: str) -> bool:
    """Whether ``seen`` has ``term`` as a whole word, or its singular, as the host's term search counts it. Why: a
    reading the host found grounded in a CSV's "rotor" rows was refused at FINAL for not naming "rotors" (general dev
    split, seed s18, g-csv-argmax)."""
    one = singular(term)
    return has_word(term, seen) or (one is not None and has_word(one, seen))


# words too common to be the key of an answer or of a question ("the", "is", ...): not searched, not compared
STOP_WORDS = FUNCTION_WORDS | frozenset(
    "may might answer question text context give tell find number named called count list reply value exact exactly"
    " format".split()
)  # the words terms() drops (wasm_sandbox.operators), and the words every task's wording uses: its instruction and
# the answer's form ("Count how many times ...", "List every ...", "Reply with ...", "Give the exact value",
# "Format: YYYY-MM-DD"). Seen on held-out probes (twelfth round): "count" (20 mentions in a syslog) was the rarest
# term of "Count how many times the OOM killer killed ...", "value" (once in a YAML dump) of "What maxmemory-policy
# ... billing-worker uses? Give the exact value.", and their lines were read


# A contraction's parts are no words: "don't" split at its apostrophe gave "don", which led the terms of "... and
# don't count days I only planned" (held-out probe, eighteenth round), and "we'll" gives "ll". "n't" is "not", the
# other endings ("'s", "'re", "'ll", "'ve", "'d", "'m") go.
_NOT = re.compile(r"(?:\b(?:ca|wo|sha)|(?<=[a-z]))n['’]t\b", re.IGNORECASE)
_ENDING = re.compile(r"(?<=[^\W_])['’](?:s|re|ll|ve|d|m)\b", re.IGNORECASE)


def without_contractions(text: str) -> str:
    """``text`` with each "n't" written " not" and the other endings of a contraction dropped."""
    return _ENDING.sub("", _NOT.sub(" not", text))


def content_words(text: str) -> list[str]:
    """The words of ``text`` that can carry meaning, in order, once each: not stop words, and numbers or at least
    two characters, as the operators' ``terms()`` keeps them. How a word is written (capitals, hyphens, quotes)
    plays no part.

    Why two: a name's word may be two letters ("Delta Xu", "Ana Li"). With three, on the general test split
    (g-table-compare, seed v3) "Xu" was no term, so that project's row was never read and the comparison had one
    side; words like "id" or "vs" that are everywhere rank last by rarity anyway."""
    out: list[str] = []
    for w in WORD.findall(without_contractions(text).lower()):
        if w in STOP_WORDS or (len(w) < 2 and not w.isdigit()):
            continue
        if w not in out:
            out.append(w)
    return out


def offered(answer: str, question: str) -> bool:
    """Whether the question offers ``answer`` as one of its options: joined to another (:func:`_offered`) or in a
    list of three or more (:func:`engine.listing.listed`: "'human being', 'location', 'numeric value'", where the
    right "numeric value" for "which label is the most common" was refused as no answer, public aggregate at 8K)."""
    a = norm(answer)
    found = listed(question)
    return _offered(a, norm(question)) or found is not None and a in {norm(o) for o in found[0]}


def _offered(a: str, q: str) -> bool:
    """Whether the question offers ``a`` as one of its options ("A or B", "between A and B", "compare A with B",
    "A versus B"): then naming it is the answer.

    Why: "Which project had the larger budget, Beacon Gallo or Zephyr Young?" (general dev split, g-table-compare):
    the worker's right "Beacon Gallo" occurs in the question, and was taken for a restatement four times until the
    run hit its wall; "Between Tundra Cruz and Juniper Cruz, tell me which one ..." likewise refused the right
    "Juniper Cruz" (dev split, after "or" alone was allowed)."""
    e, j = re.escape(a), r"(?:or|and|vs\.?|versus)"
    joined = rf"(?<![^\W_]){e} {j}(?![^\W_])|(?<![^\W_]){j} {e}(?![^\W_])"
    compared = rf"\bcompare (?:{e} (?:with|to)\b|[^.?!]{{1,80}}? (?:with|to) {e}(?![^\W_]))"
    return re.search(joined, q) is not None or re.search(compared, q) is not None


_CLAUSE = re.compile(r"[,;:!?()\"]|\.(?:\s|$)")


def clause_words(text: str) -> list[list[str]]:
    """The words of each clause of ``text`` (split at punctuation), as written: two words stand side by side only
    inside one clause ("budget, Beacon" are not a pair)."""
    return [WORD.findall(clause) for clause in _CLAUSE.split(text)]


def one_line(text: str, n: int = 80) -> str:
    """``text`` on one line, at most ``n`` characters: a value quoted inside a one-line reason."""
    t = " ".join(str(text).split())
    return t if len(t) <= n else t[: n - 3] + "..."
