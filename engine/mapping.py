"""``llm_map`` and ``classify``: one worker question per item, batched, parsed, aligned with the input.

Why host helpers: a 1.5B root that must label 300 tickets writes a batching loop, parses free text and miscounts.
These two calls do the loop in host code: items go to the worker in batches (each drawn from the budget like
``llm_query_batched``), a label is scored over the label set where the backend can (one prefill per item) and
calibrated against the worker's leaning (:func:`leaning`), else generated under the labels'
grammar and parsed leniently, an unparsable or failed item is retried once, and the result list has one entry per
item (``None`` where no answer could be had), so counting or grouping is one line of Python in the cell.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.backends.base import Generation, choice_grammar
from engine.guardrails import GuardrailError

if TYPE_CHECKING:
    from engine.subcalls import SubCalls

MAX_ITEMS = 5000
MAX_LABELS = 50
MIN_CALIBRATED = 20  # scored items from which their mean estimates the worker's leaning (see leaning)
NEUTRAL_FLOOR = 4  # the empty text's leaning is used when it gives every label 1/NEUTRAL_FLOOR of an even share
OTHER_LABELS = frozenset({"other", "others", "none", "no", "neither", "something else", "anything else"})
LABEL_SYSTEM = "You are a careful assistant."  # the worker's NOT FOUND rule made a 0.5B answer "yes" to everything


def _items(a: dict[str, Any]) -> list[str]:
    items = a.get("items")
    if isinstance(items, str) or not isinstance(items, list):
        raise TypeError("items must be a list of strings (for example lines or chunks of `context`)")
    if len(items) > MAX_ITEMS:
        raise GuardrailError("max_items", f"at most {MAX_ITEMS} items per call; split the list")
    return [str(x) for x in items]


def parse_label(text: str, labels: list[str]) -> str | None:
    """The label a reply names: an exact match, else the one label it mentions (two or more: ambiguous, None)."""
    t = text.strip().strip(".\"'`*").strip().lower()
    by_low = {label.lower(): label for label in labels}
    if t in by_low:
        return by_low[t]
    found = [by_low[low] for low in by_low if re.search(rf"(?<!\w){re.escape(low)}(?!\w)", t)]
    return found[0] if len(found) == 1 else None


def _text(gen: Generation | None) -> str | None:
    return None if gen is None else gen.text.strip()


def leaning(gens: list[Generation | None], neutral: Generation | None) -> list[float] | None:
    """The worker's log-probability of each label whatever the text: from the empty text, else from the items' mean.

    Why two estimates, measured with Qwen2.5-Coder-1.5B. On 600 OOLONG-like lines of two windows (6 labels) the most
    probable label was right for 60 % and 48 % ("entity" for 44 % and 57 % of the lines). Against the same prompt
    with an empty text (contextual calibration, Zhao et al. 2021): 78 % and 78 %, and counts close to the truth (83
    "human being" lines for 87). Against the items' mean (batch calibration, Zhou et al. 2024): 77 % and 71 %, but
    counts pulled towards equal (162 for 87) and the wrong most common label. On 30 everyday lines (food, sport,
    weather) the empty text was no neutral: it gave "sport" 2 to 5 %, and calibrating by it took 21 right down to 17,
    where the mean took it up to 26. So the empty text is used when it leaves every label at least a quarter of an
    even share (OOLONG's lowest was 8 % of 6 labels), the mean otherwise, from :data:`MIN_CALIBRATED` items.

    Why a quarter, not the third it was: with the entries' description as the instruction (the category step,
    :mod:`engine.strategy.categories`), the empty text gave "numeric value" 5.0 % of 6 labels (0.30 of an even
    share). On 160 lines of each of the public quick profile's two 32K windows, calibrating by it was right for 77 %
    and 73 % of the lines, against 73 % and 67 % by the mean, and its counts were near the truth (14 "human being"
    for 18; 47 "description and abstract concept" for 55, the most common, where the mean made "abbreviation" the
    most common). The everyday lines' 2 to 5 % (0.06 to 0.2 of an even share, of 3 or 4 labels) stay below it.
    Shown on one family only (the public aggregate); no family of the general test split labels with a set this size.
    """
    if neutral is not None and neutral.choice_logprobs is not None:
        floor = math.log(1 / (NEUTRAL_FLOOR * len(neutral.choice_logprobs)))
        if min(neutral.choice_logprobs) >= floor:
            return list(neutral.choice_logprobs)
    scored = [g.choice_logprobs for g in gens if g is not None and g.choice_logprobs is not None]
    if len(scored) < MIN_CALIBRATED:
        return None
    return [math.log(sum(math.exp(lp[k]) for lp in scored) / len(scored)) for k in range(len(scored[0]))]


def calibrated(gens: list[Generation | None], neutral: Generation | None, labels: list[str]) -> list[str | None]:
    """Each item's label: the one most above the worker's :func:`leaning`.

    Where there is no leaning to divide out (fewer than :data:`MIN_CALIBRATED` items and no usable neutral) or an
    item was not scored (an OpenAI-compatible server generates under the labels' grammar), the label is the most
    probable one, or the one the reply names.
    """
    lean = leaning(gens, neutral)
    out: list[str | None] = []
    for g in gens:
        if g is None or g.choice_logprobs is None or lean is None:
            out.append(None if g is None else parse_label(g.text, labels))
        else:
            gain = [lp - base for lp, base in zip(g.choice_logprobs, lean, strict=True)]
            out.append(labels[max(range(len(labels)), key=gain.__getitem__)])
    return out


class MapCalls:
    """The ``extra`` host calls of one run, built on its :class:`~engine.subcalls.SubCalls` (same checks)."""

    def __init__(self, subs: SubCalls) -> None:
        self.subs = subs
        # answers of earlier calls of this run, by (helper, items, question): seen, a 1.5B root re-ran the cell that
        # labelled 281 lines (150 s) to add one line after it; asked again, the same items get the same labels
        self._done: dict[tuple[object, ...], list[str | None]] = {}

    def _cached(self, key: tuple[object, ...], compute: Callable[[], list[str | None]]) -> list[str | None]:
        if key not in self._done:
            self._done[key] = compute()
        return list(self._done[key])

    def _ask(
        self,
        prompts: list[str],
        max_tokens: int,
        kind: str,
        system: str | None = None,
        choices: tuple[str, ...] = (),
        grammar: str | None = None,
    ) -> list[Generation | None]:
        """Every prompt through the worker in batches of the run's width; ``None`` for a failed item."""
        subs = self.subs
        width = subs.run.lim.max_batch_width
        out: list[Generation | None] = []
        for i in range(0, len(prompts), width):
            chunk = prompts[i : i + width]
            for j, p in enumerate(chunk):
                subs._check_size(p, i + j)
            subs.run.budget.take_sub_calls(len(chunk), subs.cell_counter, kind=kind)
            opts = {"max_tokens": max_tokens}
            gens = subs._worker_call(chunk, opts, kind, system=system, choices=choices, grammar=grammar)
            out.extend(None if g.error else g for g in gens)
        return out

    def llm_map(self, a: dict[str, Any]) -> list[str | None]:
        items = _items(a)
        instruction = str(a.get("instruction") or a.get("question") or "").strip()
        if not instruction:
            raise TypeError("llm_map needs an instruction, e.g. llm_map(items, 'Extract the date of the entry.')")
        max_tokens = max(1, min(int(a.get("max_tokens", 64)), 512))
        return self._cached(
            ("map", tuple(items), instruction, max_tokens), lambda: self._map(items, instruction, max_tokens)
        )

    def _map(self, items: list[str], instruction: str, max_tokens: int) -> list[str | None]:
        prompts = [f"{instruction}\nText: {item}" for item in items]
        answers = [_text(g) for g in self._ask(prompts, max_tokens, "map")]
        retry = [k for k, ans in enumerate(answers) if ans is None]
        if retry:
            again = self._ask([prompts[k] for k in retry], max_tokens, "map")
            for k, g in zip(retry, again, strict=True):
                answers[k] = _text(g)
        return answers

    def classify(self, a: dict[str, Any]) -> list[str | None]:
        items = _items(a)
        labels = [str(x).strip() for x in (a.get("labels") or []) if str(x).strip()]
        if len(labels) == 1 and labels[0].lower() not in OTHER_LABELS:
            labels.append("other")  # seen: classify(items, ["human being"]); one label means "is it this?"
        if len(labels) < 2 or len(labels) > MAX_LABELS or len(set(map(str.lower, labels))) != len(labels):
            raise TypeError(f"classify needs 2 to {MAX_LABELS} distinct labels, e.g. ['yes', 'no']")
        instruction = str(a.get("instruction") or a.get("question") or "").strip()
        key = ("classify", tuple(items), tuple(labels), instruction)
        return self._cached(key, lambda: self._classify(items, labels, instruction))

    def _classify(self, items: list[str], labels: list[str], instruction: str) -> list[str | None]:
        rest = [lb for lb in labels if lb.lower() not in OTHER_LABELS]
        if instruction and {lb.lower() for lb in labels} == {"yes", "no"}:
            return self._polar(items, instruction, labels)
        if len(labels) == 2 and len(rest) == 1:
            return self._one_topic(items, rest[0], labels)
        head = f"{instruction}\n" if instruction else ""

        def prompt(text: str) -> str:
            return f"{head}Labels: {', '.join(labels)}.\nText: {text}\nLabel:"

        max_tokens = max(4, max(self.subs.run.rlm.worker.count_tokens(lb) for lb in labels) + 2)
        choices = tuple(labels)
        # the last prompt is the empty text: the worker's leaning when there is nothing to read (see leaning)
        *gens, neutral = self._ask([*map(prompt, items), prompt("")], max_tokens, "classify", LABEL_SYSTEM, choices)
        result = calibrated(gens, neutral, labels)
        retry = [k for k, lab in enumerate(result) if lab is None]
        if retry:
            strict = [f"{prompt(items[k])}\nAnswer with one of: {', '.join(labels)}. Nothing else." for k in retry]
            again = self._ask(strict, max_tokens, "classify", LABEL_SYSTEM, choices)
            for k, g in zip(retry, again, strict=True):
                result[k] = None if g is None else parse_label(g.text, labels)
        return result

    def _one_topic(self, items: list[str], topic: str, labels: list[str]) -> list[str | None]:
        """``[topic, "other"]``: one yes/no question per item, which small workers answer far better.

        Measured on Qwen2.5-Coder-0.5B, 12 lines, 4 about sport: "Labels: sport, other" picked "sport" for all 12
        (4/12); "Is this line about sport? Answer yes or no." under a yes/no grammar got 9/12. Not calibrated: an
        topic may truly be rare, and a mean over the items would make it common. Generated, not scored: the 0.5B
        leans to "No." so much that counting its capitalised spellings too (as scoring does) took a count of 5
        sport lines in 20 down to 2; under the lower-case grammar it found 4 or 5.
        """
        other = next(lb for lb in labels if lb != topic)
        prompts = [f"Line: {item} Question: Is this line about {topic}? Answer yes or no." for item in items]
        return self._yes_no(prompts, topic, other)

    def _polar(self, items: list[str], instruction: str, labels: list[str]) -> list[str | None]:
        """``["yes", "no"]`` with an instruction: the instruction is the question asked of each item, first, so a
        batch shares its tokens (decoded once, :mod:`engine.backends.llama.backend`). Why: as a topic, "yes" made
        the question "Is this line about yes?" and the instruction was lost."""
        by_low = {lb.lower(): lb for lb in labels}
        prompts = [f"{instruction}\nText: {item}\nAnswer yes or no." for item in items]
        return self._yes_no(prompts, by_low["yes"], by_low["no"])

    def _yes_no(self, prompts: list[str], yes: str, no: str) -> list[str | None]:
        """Each prompt answered under a yes/no grammar: ``yes`` or ``no`` per item, None where it failed."""
        grammar = choice_grammar(["yes", "no"])
        raw = [_text(g) for g in self._ask(prompts, 3, "classify", LABEL_SYSTEM, grammar=grammar)]
        return [None if r is None else (yes if r.lower().startswith("yes") else no) for r in raw]

    def table(self) -> dict[str, Any]:
        return {"llm_map": self.llm_map, "classify": self.classify}
