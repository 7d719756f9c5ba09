"""``aggregate`` (OOLONG-like): counting, user and timeline questions over a window of labelled-by-construction lines.

Question kinds follow OOLONG's trec_coarse categories: how many lines have a label, which label is most common,
how many lines of one user have a label, which user has most lines of a label, how many lines of a label fall in a
month, in which month a label was most frequent. Scored as OOLONG does: numbers ``0.75 ** |error|``, labels and
user ids exact, dates parsed (month and year).
"""

from __future__ import annotations

import collections
import random
from collections.abc import Sequence
from datetime import date
from typing import Any

from bench import scoring
from bench.tasks import Instance, Score, oolong, rng_for
from bench.tasks.oolong import LABELS, Row

SIZES = {"1k": 1_000, "8k": 8_192, "16k": 16_384, "32k": 32_768, "64k": 65_536, "131k": 131_072}
KINDS = ("count_label", "most_common", "user_count", "user_most", "month_count", "month_most")


def _unique_max(counter: collections.Counter[Any]) -> Any | None:
    top = counter.most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


def answer(query: dict[str, Any], rows: Sequence[Row]) -> dict[str, Any] | None:
    """The gold answer of ``query`` over ``rows``; None when it is ambiguous (a tie)."""
    kind, lab = query["kind"], query.get("label")
    if kind == "count_label":
        return {"kind": "number", "value": sum(r.label == lab for r in rows)}
    if kind == "most_common":
        top = _unique_max(collections.Counter(r.label for r in rows if r.label))
        return None if top is None else {"kind": "label", "value": top}
    if kind == "user_count":
        return {"kind": "number", "value": sum(r.label == lab and r.user == query["user"] for r in rows)}
    if kind == "user_most":
        top = _unique_max(collections.Counter(r.user for r in rows if r.label == lab))
        return None if top is None else {"kind": "user", "value": top}
    if kind == "month_count":
        y, m = query["month"]
        return {"kind": "number", "value": sum(r.label == lab and (r.day.year, r.day.month) == (y, m) for r in rows)}
    if kind == "month_most":
        top = _unique_max(collections.Counter((r.day.year, r.day.month) for r in rows if r.label == lab))
        if top is None:
            return None
        return {"kind": "date", "value": scoring.month_label(date(top[0], top[1], 1))}
    raise ValueError(kind)


def question_text(query: dict[str, Any]) -> str:
    kind, lab = query["kind"], query.get("label")
    if kind == "count_label":
        q = f"How many lines should be labelled '{lab}'? Answer with a number."
    elif kind == "most_common":
        q = "Which label is the most common among all lines? Answer with the label."
    elif kind == "user_count":
        q = f"How many lines from the user with ID {query['user']} should be labelled '{lab}'? Answer with a number."
    elif kind == "user_most":
        q = f"Which user ID has the most lines labelled '{lab}'? Answer with the user ID."
    elif kind == "month_count":
        y, m = query["month"]
        month = scoring.month_label(date(y, m, 1))
        q = f"How many lines dated in {month} should be labelled '{lab}'? Answer with a number."
    else:
        q = f"In which month (month and year) were the most lines labelled '{lab}' dated? Answer like 'March 2023'."
    return oolong.TASK + q


def make_query(rng: random.Random, kind: str, rows: Sequence[Row]) -> dict[str, Any]:
    lab = rng.choice(LABELS)
    if kind == "user_count":
        users = collections.Counter(r.user for r in rows)
        return {"kind": kind, "label": lab, "user": rng.choice(sorted(u for u, _ in users.most_common(5)))}
    if kind == "month_count":
        months = sorted({(r.day.year, r.day.month) for r in rows})
        return {"kind": kind, "label": lab, "month": list(rng.choice(months))}
    return {"kind": kind, "label": lab}


class Aggregate:
    name = "aggregate"
    sizes = SIZES
    metric = "OOLONG score: exact (labels, user ids, months), 0.75^|error| (counts)"

    def generate(self, size: str, index: int, seed: str) -> Instance:
        rng = rng_for(seed, self.name, size, index)
        context, rows, n = oolong.window(rng, SIZES[size])
        kind = KINDS[index % len(KINDS)]
        for _ in range(20):
            query = make_query(rng, kind, rows)
            gold = answer(query, rows)
            if gold is not None:
                break
        else:  # every draw tied: a count has no ties
            query = make_query(rng, "count_label", rows)
            gold = answer(query, rows)
        return Instance(
            family=self.name,
            size=size,
            index=index,
            context=context,
            question=question_text(query),
            gold=gold,
            input_tokens=n,
            answer_tokens=24,
            meta={"query": query, "labels": {r.text: r.label for r in rows}},
        )

    def score(self, instance: Instance, answer_text: str) -> Score:
        return Score(scoring.oolong_score(answer_text, instance.gold, LABELS))

    def _reply(self, gold: dict[str, Any] | None) -> str:
        return "" if gold is None else f"Answer: {gold['value']}"

    def oracle(self, instance: Instance) -> str:
        rows = oolong.parse(instance.context, instance.meta["labels"])
        return self._reply(answer(instance.meta["query"], rows))

    def baseline(self, instance: Instance) -> str:
        """Regex-only: labels guessed from label words written in the lines (none, unless the labels leak)."""
        rows = oolong.leak_rows(oolong.parse(instance.context, instance.meta["labels"]))
        gold = answer(instance.meta["query"], rows)
        if gold is None:  # nothing matched: the first label / user / month seen
            kind = instance.gold["kind"]
            first = {"label": LABELS[0], "user": rows[0].user if rows else "", "date": "January 2020"}
            return f"Answer: {first.get(kind, '0')}"
        return self._reply(gold)


def make_family() -> Aggregate:
    return Aggregate()
