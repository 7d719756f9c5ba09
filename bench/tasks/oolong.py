"""OOLONG-like windows: lines ``Date: Mar 04, 2023 || User: 14512 || Instance: <question>`` with hidden labels.

Why built this way: OOLONG's trec_coarse windows label TREC questions, and TREC is in no registry package, so the
entries are generated with labels known by construction. Each of the six TREC coarse classes has several question
templates filled with real entity names (HotpotQA's Wikipedia titles); the wh-words are mixed across classes
("What year ..." is numeric, "What is ..." description, "Which city ..." location) so the class is not given away
by the first word, and no template or entity contains a class name, so a regex for the label words finds nothing.
Users follow an 80/20 split (a fifth of the users write four fifths of the lines) and dates span one year.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from bench import data, tokens

LABELS = [
    "abbreviation",
    "entity",
    "description and abstract concept",
    "human being",
    "location",
    "numeric value",
]
LABEL_WORDS = ("abbreviation", "entity", "description", "abstract", "concept", "human", "being", "location",
               "numeric", "value", "label", "categor")  # fmt: skip

TEMPLATES: dict[str, tuple[str, ...]] = {
    "abbreviation": (
        "What does {abbr} stand for in connection with {e}?",
        "Which words are the initials {abbr} short for, as used about {e}?",
        "How is the acronym {abbr} expanded in articles on {e}?",
        "What is the full form of {abbr} in the history of {e}?",
        "In writing about {e}, what is {abbr} short for?",
        "Who can say what the letters {abbr} mean when fans discuss {e}?",
    ),
    "entity": (
        "What instrument is heard most in {e}?",
        "Which language was {e} first written in?",
        "What colour is the emblem of {e}?",
        "Which award did {e} receive first?",
        "What animal appears on the cover of {e}?",
        "Which sport is {e} best known for?",
        "What kind of vehicle is shown in {e}?",
    ),
    "description": (
        "What is {e}?",
        "Why is {e} considered important?",
        "How did {e} get its name?",
        "What is the origin of {e}?",
        "Why did critics praise {e}?",
        "How does {e} differ from its predecessors?",
        "What does {e} mean to historians?",
    ),
    "human": (
        "Who founded {e}?",
        "Which person is credited with creating {e}?",
        "What is the name of the director of {e}?",
        "Who was the first to write about {e}?",
        "Which actor starred in {e}?",
        "What was the name of the architect behind {e}?",
    ),
    "location": (
        "Where is {e} located?",
        "Which city hosted {e}?",
        "What country is {e} from?",
        "In which state was {e} founded?",
        "What river flows near {e}?",
        "Where was {e} first performed?",
    ),
    "numeric": (
        "How many people attended {e}?",
        "What year was {e} released?",
        "When did {e} take place?",
        "How long is {e}?",
        "Which year saw the founding of {e}?",
        "What was the population around {e} in 2010?",
        "How much did {e} cost to produce?",
    ),
}
_KEY = {
    "abbreviation": "abbreviation",
    "entity": "entity",
    "description and abstract concept": "description",
    "human being": "human",
    "location": "location",
    "numeric value": "numeric",
}
LINE = re.compile(r"^Date: (\w{3} \d{2}, \d{4}) \|\| User: (\d+) \|\| Instance: (.+)$", re.MULTILINE)
TASK = (
    "Each line of the context is a general-knowledge question that a user asked on a date. Every question has "
    "exactly one label, which is not written anywhere and must be decided from the question's meaning: "
    + ", ".join(f"'{lab}'" for lab in LABELS)
    + ". "
)


@dataclass(frozen=True)
class Row:
    day: date
    user: str
    text: str
    label: str


@functools.lru_cache(maxsize=1)
def entities() -> list[str]:
    """Real entity names: HotpotQA paragraph titles without HTML entities, brackets or label words."""
    titles = {t for q in json.loads(data.read_text("hotpotqa.json")) for t, _ in q["context"]}
    out = []
    for t in sorted(titles):
        t = re.sub(r"\s*\([^)]*\)$", "", t).strip()
        low = t.lower()
        if not (4 <= len(t) <= 40) or not re.fullmatch(r"[A-Za-z0-9 .,'&-]+", t):
            continue
        if any(w in low for w in LABEL_WORDS):
            continue
        out.append(t)
    return sorted(set(out))


def _abbr(entity: str) -> str:
    caps = [w[0].upper() for w in re.findall(r"[A-Za-z][A-Za-z']*", entity)]
    return "".join(caps) if len(caps) >= 2 else entity[:3].upper()


def fmt_date(d: date) -> str:
    return d.strftime("%b %d, %Y")


def make_rows(rng: random.Random, target_tokens: int) -> list[Row]:
    """Rows for a window of about ``target_tokens`` cl100k tokens (the caller counts the final text exactly)."""
    n_rows = max(12, target_tokens // 26)  # an entry line is ~26 tokens
    n_users = max(6, n_rows // 6)
    users = sorted({str(rng.randint(10_000, 99_999)) for _ in range(n_users * 2)})[: n_users * 2]
    rng.shuffle(users)
    users = users[:n_users]
    heavy = users[: max(1, n_users // 5)]
    light = users[len(heavy) :] or heavy
    weights = [rng.uniform(0.4, 2.0) for _ in LABELS]
    start = date(rng.randint(2019, 2024), rng.randint(1, 12), 1)
    ents = entities()
    seen: set[str] = set()
    rows: list[Row] = []
    while len(rows) < n_rows * 2:  # twice as many as needed; the window is cut to size afterwards
        label = rng.choices(LABELS, weights)[0]
        e = rng.choice(ents)
        text = rng.choice(TEMPLATES[_KEY[label]]).format(e=e, abbr=_abbr(e))
        if text in seen:
            continue
        seen.add(text)
        user = rng.choice(heavy) if rng.random() < 0.8 else rng.choice(light)
        rows.append(Row(start + timedelta(days=rng.randrange(365)), user, text, label))
    return rows


def render(row: Row) -> str:
    return f"Date: {fmt_date(row.day)} || User: {row.user} || Instance: {row.text}"


def window(rng: random.Random, target_tokens: int) -> tuple[str, list[Row], int]:
    """(context text, the rows in it, exact tokens). Lines are cut so the text stays within the target."""
    rows = make_rows(rng, target_tokens)
    kept: list[Row] = []
    total = 0
    for r in rows:
        n = tokens.count(render(r)) + 1
        if kept and total + n > target_tokens:
            break
        kept.append(r)
        total += n
    text = "\n".join(render(r) for r in kept) + "\n"
    return text, kept, tokens.count(text)


def parse(context: str, labels: dict[str, str]) -> list[Row]:
    """Rows read back from a context, labels looked up by text: what an oracle with the hidden labels sees."""
    from datetime import datetime

    out = []
    for m in LINE.finditer(context):
        day = datetime.strptime(m.group(1), "%b %d, %Y").date()
        out.append(Row(day, m.group(2), m.group(3), labels[m.group(3)]))
    return out


def literal_label(text: str) -> str | None:
    """The regex-only guess: a label whose own words appear in the text (only a leak makes this fire)."""
    low = text.lower()
    for lab in LABELS:
        if re.search(r"\b" + re.escape(_KEY[lab]) + r"\b", low):
            return lab
    return None


def leak_rows(rows: Sequence[Row]) -> list[Row]:
    """Rows relabelled by :func:`literal_label` (unmatched rows get no label)."""
    return [Row(r.day, r.user, r.text, literal_label(r.text) or "") for r in rows]
