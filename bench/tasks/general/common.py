"""What every general family shares: the split-aware generator, the scorers by answer type, and the vocabulary.

Why one base class: the split rule (which phrasings and which seed stream belong to ``dev`` and which to ``test``)
must be the same for every family, or a family could leak test phrasings into tuning. Families only build a
context, the question's slots, the gold answer and the hidden facts the oracle may use.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from bench import scoring, tokens
from bench.tasks import Instance, Score, rng_for

SPLITS = ("dev", "test")
ANSWER_TYPES = ("number", "name", "date", "list", "yes/no", "code literal")

FIRST = (
    "Amira Bruno Chen Dalia Emeka Freya Goran Hana Ines Jonas Kofi Lena Mateo Nadia Oskar Priya Quentin Rosa "
    "Sven Tamara Umar Vera Wendell Ximena Yusuf Zofia Anton Beatriz Cyrus Dunya Elio Farah Gideon Helga Ivo "
    "Jasmin Kenji Leila Marek Noor Otto Paloma Rafael Selin Tobias Ulla Viktor Wanda Yara Zeno"
).split()
LAST = (
    "Abara Brandt Castillo Dimitrov Eriksen Fontaine Gallo Haddad Ibsen Jovanovic Kowalski Lindqvist Moreau "
    "Nakamura Okafor Petrov Quispe Rossi Sato Tanaka Ueda Varga Weber Xu Yilmaz Zielinski Alvarez Becker Cruz "
    "Duarte Engel Fischer Greco Horvat Iqbal Jensen Keller Laine Mendes Novak Ortega Pereira Reyes Silva Torres "
    "Urban Vidal Wolff Young Zamora"
).split()
CITIES = (
    "Lisbon Porto Oslo Bergen Lyon Nantes Graz Linz Turin Genoa Leeds Bristol Krakow Gdansk Ghent Utrecht "
    "Malmo Aarhus Tampere Tartu Riga Vilnius Brno Kosice Zagreb Split Seville Bilbao Cork Galway Basel Bern "
    "Dresden Bremen Lille Nice Varna Cluj Debrecen Ljubljana"
).split()
PRODUCTS = (
    "widget hinge bracket gasket sprocket valve bearing coupling nozzle spindle flange pulley gear clamp "
    "rotor piston washer bushing lever damper"
).split()
COLOURS = "amber cobalt crimson ivory jade ochre russet sable teal umber violet silver".split()
ANIMALS = "badger heron lynx otter falcon marten viper stoat ibis bison gecko walrus".split()
MONTHS = ("January February March April May June July August September October November December").split()


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def people(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct full names."""
    out: dict[str, None] = {}
    while len(out) < n:
        out[person(rng)] = None
    return list(out)


@dataclass
class Built:
    """What a family's ``build`` returns: the context, the question's slots, the gold and the oracle's hidden facts."""

    context: str
    slots: dict[str, str]
    gold: Any
    meta: dict[str, Any] = field(default_factory=dict)
    distractors: list[str] = field(default_factory=list)  # near-miss answers a careless method gives


class GeneralFamily:
    """Base of every general family. Subclasses set the class attributes and implement build/solve/guess."""

    name = ""
    sizes: dict[str, int] = {}  # size label -> target characters of the context
    metric = ""
    tags: dict[str, str] = {}  # format, answer_type, reasoning
    phrasings: tuple[str, ...] = ()
    dev_phrasings: tuple[int, ...] = (0, 1)  # the rest are test phrasings
    answer_tokens = 32

    # ---- to implement ----
    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        raise NotImplementedError

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        """The oracle: the answer computed from the context and the generator's hidden facts only."""
        raise NotImplementedError

    def guess(self, instance: Instance) -> str:
        """The baseline: closed-book or regex-only, near chance."""
        raise NotImplementedError

    # ---- shared ----
    def phrasing_ids(self, split: str) -> list[int]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        dev = list(self.dev_phrasings)
        return dev if split == "dev" else [i for i in range(len(self.phrasings)) if i not in dev]

    def generate(self, size: str, index: int, seed: str) -> Instance:
        return self.generate_split(size, index, seed, "dev")

    def generate_split(self, size: str, index: int, seed: str, split: str) -> Instance:
        if size not in self.sizes:
            raise ValueError(f"unknown size {size!r} for {self.name}; choose from {', '.join(self.sizes)}")
        ids = self.phrasing_ids(split)
        rng = rng_for(seed, split, self.name, size, index)  # dev and test draw from separate seed streams
        built = self.build(rng, self.sizes[size], index)
        p = ids[index % len(ids)]
        meta = {**built.meta, "split": split, "phrasing": p, "distractors": built.distractors}
        return Instance(
            family=self.name,
            size=size,
            index=index,
            context=built.context,
            question=self.phrasings[p].format(**built.slots),
            gold=built.gold,
            input_tokens=tokens.count(built.context),
            answer_tokens=self.answer_tokens,
            meta=meta,
            split=split,
        )

    def score(self, instance: Instance, answer: str) -> Score:
        return Score(score_answer(self.tags["answer_type"], answer, instance.gold, instance.meta))

    def oracle(self, instance: Instance) -> str:
        return self.solve(instance.context, instance.meta)

    def baseline(self, instance: Instance) -> str:
        return self.guess(instance)


# ---- scoring ---------------------------------------------------------------------------------------------------

_ISO = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_MDY = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(\d{4}))?\b")
_DMY = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?([A-Za-z]{3,9})\.?(?:,?\s+(\d{4}))?\b")
_MONTH_NUM = {m.lower()[:3]: i + 1 for i, m in enumerate(MONTHS)}


def parse_date(text: str) -> tuple[int | None, int, int] | None:
    """(year or None, month, day) from ISO, "March 11, 2025", "Mar 11" or "11 March 2025"; the first one found."""
    found: list[tuple[int, tuple[int | None, int, int]]] = []
    for m in _ISO.finditer(text):
        found.append((m.start(), (int(m.group(1)), int(m.group(2)), int(m.group(3)))))
    for m in _MDY.finditer(text):
        mon = _MONTH_NUM.get(m.group(1).lower()[:3])
        if mon and m.group(1).lower() in (MONTHS[mon - 1].lower(), MONTHS[mon - 1].lower()[:3]):
            found.append((m.start(), (int(m.group(3)) if m.group(3) else None, mon, int(m.group(2)))))
    for m in _DMY.finditer(text):
        mon = _MONTH_NUM.get(m.group(2).lower()[:3])
        if mon and m.group(2).lower() in (MONTHS[mon - 1].lower(), MONTHS[mon - 1].lower()[:3]):
            found.append((m.start(), (int(m.group(3)) if m.group(3) else None, mon, int(m.group(1)))))
    return min(found)[1] if found else None


def norm(text: str) -> str:
    """Lower case, punctuation and articles removed, whitespace collapsed (SQuAD's normalisation)."""
    return scoring.normalize_answer(text)


def _mentions(haystack: str, needle: str) -> bool:
    return bool(needle) and re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", haystack) is not None


def literal_score(answer: str, gold: str, distractors: list[str], fold: bool = True) -> float:
    """1 when the answer is the gold, or names it and no near-miss distractor; names/literals normalised."""
    part = scoring.answer_part(answer)
    a, g = (norm(part), norm(gold)) if fold else (part.strip().strip("`"), gold)
    if a == g:
        return 1.0
    if not _mentions(a, g):
        return 0.0
    others = [norm(d) if fold else d for d in distractors]
    return 0.0 if any(_mentions(a, d) and d != g and d not in g for d in others) else 1.0


def code_literal_score(answer: str, gold: str, distractors: list[str]) -> float:
    """Code literals: quotes unified (' and ") and backticks dropped, then compared as literals, case kept."""

    def unify(s: str) -> str:  # answer_part strips outer quotes from a reply: strip them from the literals too
        return s.replace('"', "'").replace("`", "").strip("'")

    return literal_score(unify(answer), unify(gold), [unify(d) for d in distractors], fold=False)


def count_score(answer: str, gold: float, tolerance: float) -> float:
    """Full credit within ``tolerance`` (relative, at least 0 items off), then 0.75 per item beyond (OOLONG's rule)."""
    got = scoring.first_number(scoring.answer_part(answer))
    if got is None:
        return 0.0
    slack = tolerance * abs(gold)
    err = max(0.0, abs(got - gold) - slack)
    return float(0.75**err)


def list_f1(answer: str, gold: list[str], pattern: str) -> float:
    return scoring.f1_sets(set(re.findall(pattern, answer)), set(gold))


def yes_no(answer: str) -> str | None:
    m = re.search(r"\b(yes|no)\b", scoring.answer_part(answer).lower()) or re.search(r"\b(yes|no)\b", answer.lower())
    return m.group(1) if m else None


def score_answer(answer_type: str, answer: str, gold: Any, meta: dict[str, Any]) -> float:
    """The score (0-1) of ``answer`` for a family of ``answer_type``; see the package docstring for each rule."""
    distractors = list(meta.get("distractors", []))
    if answer_type == "number":
        return count_score(answer, float(gold), float(meta.get("tolerance", 0.0)))
    if answer_type == "name":
        return literal_score(answer, str(gold), distractors)
    if answer_type == "code literal":
        return code_literal_score(answer, str(gold), distractors)
    if answer_type == "date":
        got = parse_date(scoring.answer_part(answer)) or parse_date(answer)
        want = parse_date(str(gold))
        if got is None or want is None:
            return 0.0
        return 1.0 if got[1:] == want[1:] and got[0] in (None, want[0]) else 0.0
    if answer_type == "list":
        return list_f1(answer, list(gold), str(meta["id_pattern"]))
    if answer_type == "yes/no":
        return 1.0 if yes_no(answer) == gold else 0.0
    raise ValueError(f"unknown answer type {answer_type!r}")


def fill(rng: random.Random, chars: int, make: Any, fixed: list[tuple[int, str]] | None = None) -> list[str]:
    """Lines from ``make(rng, i)`` until about ``chars`` characters, with ``fixed`` lines inserted at fractions."""
    out: list[str] = []
    total = sum(len(t) + 1 for _, t in fixed or [])
    i = 0
    while total < chars:
        line = make(rng, i)
        out.append(line)
        total += len(line) + 1
        i += 1
    for frac, text in sorted(fixed or [], reverse=True):
        out.insert(min(len(out), frac * len(out) // 1000), text)
    return out
