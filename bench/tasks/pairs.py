"""``pairs`` (OOLONG-Pairs-like): list every pair of user ids whose lines satisfy a condition; F1 over the pairs.

Same windows as ``aggregate`` (own seeds). Even instances ask a symmetric query (both users satisfy one
condition), odd ones an asymmetric query (one user satisfies a condition, the other a second one), as
OOLONG-Pairs' 10 + 10 queries do. A query is drawn among those whose answer has 1 to 60 pairs, so the lists stay
writable and a trivial answer (none, or every pair) scores near zero.
"""

from __future__ import annotations

import collections
import itertools
import random
from collections.abc import Callable, Sequence
from typing import Any

from bench import scoring
from bench.tasks import Instance, Score, oolong, rng_for
from bench.tasks.oolong import LABELS, Row

SIZES = {"1k": 1_000, "8k": 8_192, "16k": 16_384, "32k": 32_768}
MAX_PAIRS = 60
FORMAT = "List every such pair as (ID1, ID2) with the lower ID first, one pair per line, and nothing else."

Counts = dict[str, collections.Counter[str]]


def conditions() -> list[tuple[str, dict[str, Any]]]:
    """(text, spec) of every per-user condition; ``spec`` is evaluated by :func:`holds`."""
    out: list[tuple[str, dict[str, Any]]] = []
    for a in LABELS:
        out.append((f"has at least one line labelled '{a}'", {"op": "some", "a": a}))
        out.append((f"has no line labelled '{a}'", {"op": "none", "a": a}))
        for k in (1, 2, 3):
            out.append(
                (f"has exactly {k} line{'s' if k > 1 else ''} labelled '{a}'", {"op": "exactly", "a": a, "k": k})
            )
        for b in LABELS:
            if a < b:
                out.append((f"has lines labelled both '{a}' and '{b}'", {"op": "both", "a": a, "b": b}))
            if a != b:
                out.append((f"has a line labelled '{a}' but none labelled '{b}'", {"op": "but_not", "a": a, "b": b}))
    return out


def holds(spec: dict[str, Any], c: collections.Counter[str]) -> bool:
    op, a = spec["op"], spec["a"]
    if op == "some":
        return c[a] > 0
    if op == "none":
        return c[a] == 0
    if op == "exactly":
        return c[a] == spec["k"]
    if op == "both":
        return c[a] > 0 and c[spec["b"]] > 0
    return c[a] > 0 and c[spec["b"]] == 0


def per_user(rows: Sequence[Row]) -> Counts:
    out: Counts = collections.defaultdict(collections.Counter)
    for r in rows:
        out[r.user][r.label] += 1
    return dict(out)


def answer(query: dict[str, Any], rows: Sequence[Row]) -> set[tuple[str, str]]:
    counts = per_user(rows)
    users = sorted(counts, key=int)
    p: Callable[[str], bool] = lambda u: holds(query["p"], counts[u])  # noqa: E731
    if query.get("q") is None:
        ok = [u for u in users if p(u)]
        return {(a, b) for a, b in itertools.combinations(ok, 2)}
    q: Callable[[str], bool] = lambda u: holds(query["q"], counts[u])  # noqa: E731
    return {(a, b) for a, b in itertools.combinations(users, 2) if (p(a) and q(b)) or (p(b) and q(a))}


def _plural(condition: str) -> str:
    return condition.replace("has ", "have ", 1)


def pick_query(rng: random.Random, rows: Sequence[Row], symmetric: bool) -> tuple[dict[str, Any], str]:
    conds = conditions()
    order = list(range(len(conds)))
    rng.shuffle(order)
    best: tuple[int, dict[str, Any], str] | None = None
    for i in order:
        for j in [None] if symmetric else order[:12]:
            if j == i:
                continue
            query = {"p": conds[i][1], "q": None if j is None else conds[j][1]}
            n = len(answer(query, rows))
            if 1 <= n <= MAX_PAIRS:
                if j is None:
                    text = f"List all pairs of user IDs (each pair once) where both users {_plural(conds[i][0])}."
                else:
                    text = (
                        f"List all pairs of user IDs (each pair once) where one user {conds[i][0]} and the other "
                        f"user {conds[j][0]}."
                    )
                return query, text
            if n and (best is None or n < best[0]):
                best = (n, query, conds[i][0])
    if best is None:
        raise ValueError("window too small for any pairs query")
    return best[1], f"List all pairs of user IDs (each pair once) where both users {_plural(best[2])}."


class Pairs:
    name = "pairs"
    sizes = SIZES
    metric = "F1 over the listed user-id pairs"

    def generate(self, size: str, index: int, seed: str) -> Instance:
        rng = rng_for(seed, self.name, size, index)
        context, rows, n = oolong.window(rng, SIZES[size])
        query, text = pick_query(rng, rows, symmetric=index % 2 == 0)
        gold = sorted(answer(query, rows), key=lambda p: (int(p[0]), int(p[1])))
        return Instance(
            family=self.name,
            size=size,
            index=index,
            context=context,
            question=f"{oolong.TASK}{text} {FORMAT}",
            gold=[list(p) for p in gold],
            input_tokens=n,
            answer_tokens=min(768, 16 + 10 * len(gold)),
            meta={"query": query, "labels": {r.text: r.label for r in rows}},
        )

    def score(self, instance: Instance, answer_text: str) -> Score:
        want = {(a, b) for a, b in instance.gold}
        return Score(scoring.f1_sets(scoring.parse_pairs(answer_text), want))

    @staticmethod
    def _reply(pairs: set[tuple[str, str]]) -> str:
        return "\n".join(f"({a}, {b})" for a, b in sorted(pairs, key=lambda p: (int(p[0]), int(p[1]))))

    def oracle(self, instance: Instance) -> str:
        return self._reply(answer(instance.meta["query"], oolong.parse(instance.context, instance.meta["labels"])))

    def baseline(self, instance: Instance) -> str:
        """Regex-only: the pairs implied by label words written in the lines (none unless the labels leak)."""
        rows = oolong.leak_rows(oolong.parse(instance.context, instance.meta["labels"]))
        return self._reply(answer(instance.meta["query"], [r for r in rows if r.label]))


def make_family() -> Pairs:
    return Pairs()
