"""First steps the engine plans and runs for the root: the step of a task's shape that a small root gets wrong.

The root sees the planned cell as its own first reply, with its output and what to do next, and writes the rest.

*Count or list* (:func:`plan_aggregate`): every entry is labelled. Asked to count 1,000 one-line entries by a
label no word of the line gives away, the 1.5B root counted lines containing the label's name (0 found, answer 0)
or searched a word of the question, though its worked example used ``classify``; at 20 lines it wrote the same
program right. What it does reliably is the second half: counting, filtering and grouping a labelled list.
- Which labels: categories the question quotes (two or more, as in "each line is 'spam', 'ham' or 'unsure'") are
  taken as written; otherwise one root call constrained to a JSON list of strings names them ("How many tickets
  are about a delivery?" gives ["delivery", "other"]), and an empty list (code can decide: dates, ids) plans
  nothing.
- Which items: the lines, and only when the text is a list of one-line entries (almost none over 400 bytes). A
  text of paragraphs is not one entry per line, and labelling it line by line would spend the run on a question
  misjudged as an aggregation.

*Find* or *two steps* (:func:`plan_retrieval`): the question's best passages by BM25, read by the worker.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from engine import prompts as P
from engine.backends.base import Message, SamplingParams
from engine.strategies import LOOKUP_RETRIEVED_EXAMPLE, RETRIEVE_AND_ASK, SENTENCE_END
from wasm_sandbox.prompt import LONG_LINE_BYTES  # a longer line or document is a page, not an entry

if TYPE_CHECKING:
    from engine.run import Run

MIN_ENTRIES = 30  # fewer lines: the root writes the loop itself (it does, at 20 lines) and a plan buys nothing
MIN_LIST = 10  # lines of a text that can be counted over at all (the root may still write the loop itself)
MAX_LABELS = 12
MAX_RETRIEVE_PLAN_CHARS = 2_000_000  # ~500K tokens

_QUOTED = re.compile(r"(?<!\w)['\"‘“]([^'\"‘’“”\n]{1,60})['\"’”](?!\w)")

LABELS_SYSTEM = """To answer a question about many entries, each entry is first given one label. Write the labels as a JSON list: the categories the question names, or the one topic it asks about and "other". Write [] when code can answer from what is written in the entries (dates, ids, numbers, words).

Question: How many of the tickets are about a late delivery? Labels: ["late delivery", "other"]
Question: Which users asked about refunds more than twice? Labels: ["refund", "other"]
Question: How many lines were written in May 2023? Labels: []
Question: List the customers whose complaint is about noise or about smell. Labels: ["noise", "smell", "other"]
Question: How many log lines come from the auth service? Labels: []"""
LABELS_GRAMMAR = 'root ::= "[" ( str ( ", " str ){0,11} )? "]"\nstr ::= "\\"" [^"\\\\\\n]{1,60} "\\""\n'


def entries_are_lines(meta: P.PromptMeta, min_lines: int = MIN_ENTRIES) -> bool:
    """Whether the text is a list of one-line entries (log lines, tickets, records), the items to label.

    Measured on the suite: OOLONG-like windows have no line over 400 bytes; 100 HotpotQA pages have one in three
    (each page is a title line and a paragraph line), so their mean line length (190) could not tell them apart.
    """
    return meta.lines >= min_lines and meta.long_lines * 20 <= meta.lines  # long: over LONG_LINE_BYTES


def is_list(meta: P.PromptMeta) -> bool:
    """Whether a question may count over the text: one-line entries, or many documents of entry size.

    Why documents must be short too: the suite's 100 HotpotQA pages come as 100 documents (585 characters each),
    and the shape classifier called 2 of 5 of their questions "count"; shown the counting example, those runs ended
    with no answer or labelled every line.
    """
    docs = meta.n_documents >= MIN_LIST and meta.chars <= LONG_LINE_BYTES * meta.n_documents
    return entries_are_lines(meta, MIN_LIST) or docs


def quoted_labels(question: str) -> list[str]:
    """The distinct quoted phrases of the question, in order, when there are two or more (a category list)."""
    seen: dict[str, str] = {}
    for m in _QUOTED.finditer(question):
        label = m.group(1).strip()
        if label and label.lower() not in seen:
            seen[label.lower()] = label
    labels = list(seen.values())
    return labels if 2 <= len(labels) <= MAX_LABELS else []


def asked_labels(run: Run) -> list[str]:
    """Labels named by one grammar-constrained root call; [] when it names none or the call fails."""
    msgs = [Message("system", LABELS_SYSTEM), Message("user", f"Question: {run.question} Labels:")]
    try:
        gen = run.chat(msgs, SamplingParams(max_tokens=120, grammar=LABELS_GRAMMAR), None)
        raw = json.loads(gen.text)
    except Exception:  # noqa: BLE001 - no plan is a safe outcome: the root writes the whole program
        return []
    labels = [str(x).strip() for x in raw if str(x).strip()] if isinstance(raw, list) else []
    if len(labels) == 1:
        labels.append("other")
    return labels if len({lb.lower() for lb in labels}) == len(labels) >= 2 else []


def context_sentences(question: str, labels: list[str]) -> str:
    """The question's leading sentences that describe the entries, up to the first that asks or singles out labels.

    Why not the whole question, measured with the 1.5B worker on 64 OOLONG-like lines: given "... How many lines
    should be labelled 'human being'?" it labelled 60 of 72 lines "human being"; with a trailing "Answer with a
    number." 36 of 64 were right (most became "entity"); with the description alone, 48 of 64.
    """
    lows = [lb.lower() for lb in labels]
    kept = []
    for sentence in SENTENCE_END.split(question.strip()):
        named = sum(lb in sentence.lower() for lb in lows)
        if sentence.endswith("?") or named not in (0, len(lows)):
            break
        kept.append(sentence)
    return " ".join(kept)


@dataclass(frozen=True)
class PlannedStep:
    """A cell the engine runs as the root's first reply: ``setup`` then ``code``; the root's history shows ``code``.

    Why two parts: the labels and the worker's instruction (the question's description, often hundreds of
    characters) are bound to names in ``setup``, so the code the root sees, and copies when it re-runs the step,
    is four short lines; seen, the root copied a 400-character instruction into its reply (28 s of decoding).
    """

    setup: str
    code: str
    hint: str  # what the root is told after the step's output
    example: str = ""  # the worked example to show instead of the shape's, whose first step is this one
    # a root that copies the step verbatim has no next step of its own and accepts its answer: the run ends with
    # it (seen on 3 of 5 HotpotQA runs: the copy was re-run until the loop stop, and one re-run's answer flipped)
    stop_on_repeat: bool = False
    # otherwise a copy is not run again and the root is told this instead (seen on 3 of 3 aggregation runs: the
    # 1.5B root re-sent the labelling step twice, was stopped as a loop, and answered without code)
    copy_hint: str = ""


def first_step(labels: list[str], instruction: str) -> PlannedStep:
    """Label every non-empty line, keep ``items`` and ``labels`` aligned, print the counts and one line's format."""
    return PlannedStep(
        f"label_set = {labels!r}\nabout = {instruction!r}",
        "from collections import Counter\n"
        "items = [l for l in context.splitlines() if l.strip()]\n"
        "labels = classify(items, label_set, about)\n"
        "print(len(items), 'lines labelled:', Counter(labels).most_common())\n"
        "print('first line:', items[0])",
        P.HINT_PLANNED_LABELS,
        copy_hint=P.HINT_PLANNED_COPIED,
    )


def plan_aggregate(run: Run, meta: P.PromptMeta) -> PlannedStep | None:
    """The first cell of an aggregation over the text's lines, or None when the root should write it."""
    if not entries_are_lines(meta):
        return None
    labels = quoted_labels(run.question) or asked_labels(run)
    if not labels:
        return None
    described = context_sentences(run.question, labels)
    instruction = f"{described} Which label does this line have?".strip()  # 48/64; "fits this line" 46/64
    return first_step(labels, instruction)


def plan_retrieval(meta: P.PromptMeta) -> PlannedStep | None:
    """A lookup's or a two-step question's first cell: the question's best passages, read by the worker.

    Why: measured on 12 HotpotQA questions over 100 pages, the BM25 top 4 for the whole question read by the 1.5B
    worker scored 41.7 token F1, while the 1.5B root left to choose scored 30: it retrieved on two words of the
    question ("Labor member") and found other pages, or answered from search snippets. Only up to
    :data:`MAX_RETRIEVE_PLAN_CHARS`: beyond it the root's own ``search`` for a key word is what was measured
    (needles at 1M and 10M tokens: all found), with no index to build (5.1 s for 40 MB) and no ranking of tens of
    thousands of passages to trust; the plan at those sizes is not measured yet.
    """
    if meta.chars > MAX_RETRIEVE_PLAN_CHARS:
        return None
    return PlannedStep("", RETRIEVE_AND_ASK, P.HINT_PLANNED_RETRIEVAL, stop_on_repeat=True)


def plan_lookup(meta: P.PromptMeta) -> PlannedStep | None:
    """:func:`plan_retrieval` with the lookup example that starts with it (the two-step example already does)."""
    step = plan_retrieval(meta)
    return None if step is None else replace(step, example=LOOKUP_RETRIEVED_EXAMPLE)
