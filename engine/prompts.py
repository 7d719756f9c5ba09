"""System prompt, worked example and turn messages for small local coder roots (Qwen2.5-Coder 1.5B / 0.5B).

Why it looks like this (see docs on model behaviour): small roots copy the *shape* of the example closely, repeat a
search instead of answering, and invent data instead of reading ``context``. So the prompt (1) states that the text
is only reachable through code, (2) shows one complete worked example per kind of question
(:mod:`engine.strategies`) with robust patterns (case-insensitive, key words only), and the first message says which
one fits, (3) tells the model to call ``FINAL`` as soon as an output shows the answer. Turn messages repeat the
question and the next step, because a 1.5B model forgets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.strategies import Shape

# The system prompt holds only what is the same for every run of one RLM (instructions and worked examples), so
# its KV state is computed once and shared into every root session; the facts of one prompt (size, lines,
# preview) come in the first user message.
ROOT_SYSTEM = """You are a Python programmer. You answer a question about a long text that you cannot see.
The text is stored in the Python variable `context`; its size is given with the question.
The question is stored in the variable `question`. Never invent the text: read it with code.

Each reply: one short sentence, then ONE ```python code block. The code runs in a Python REPL and you see what it prints.

Functions in the REPL:
- search(pattern, max_hits=20, width=80, ignore_case=False): regex search in `context`; returns a list of (position, snippet) pairs, each snippet is the text around one match (width characters on each side).
- retrieve(query, k=5): the k passages most about `query`, as (position, passage) pairs, even when their words differ from the query.
- lines(start, end): lines of the text. chunks(size=4000): the text in pieces, as (position, text) pairs.
- files(), read_file(path), definition(name): for a text made of source files; definition gives a dict with "source", "path" and "line".
- llm_query(prompt): asks a helper model and returns its answer as a string. Put the question AND the text it needs in the prompt (at most {max_sub_chars} characters).
- llm_query_batched(prompts): like llm_query for a list of prompts (at most {max_batch}); None for a prompt that failed.
- classify(items, labels, instruction): one label per item. llm_map(items, instruction): one answer per item.
- FINAL(answer): call it as soon as an output shows the answer. It ends the task.

The question comes with a worked example of its kind: follow its steps, with your own words and names.

Search for one or two distinctive words, not a whole sentence. Do not repeat a cell you already ran."""

# The REPL without sub-calls (the paper's "no sub-calls" ablation): code alone must find and compute the answer.
ROOT_SYSTEM_NO_SUB = """You are a Python programmer. You answer a question about a long text that you cannot see.
The text is stored in the Python variable `context`; its size is given with the question.
The question is stored in the variable `question`. Never invent the text: read it with code.

Each reply: one short sentence, then ONE ```python code block. The code runs in a Python REPL and you see what it prints.

Functions in the REPL:
- search(pattern, max_hits=20, width=80, ignore_case=False): regex search in `context`; returns a list of (position, snippet) pairs, each snippet is the text around one match (width characters on each side).
- FINAL(answer): call it as soon as an output shows the answer. It ends the task.

Example.
Question: What colour is the door of the baker Tom Hale?
```python
hits = [snippet for pos, snippet in search(r"hale", max_hits=10, width=150, ignore_case=True)]
for h in hits:
    print(h)
```
Output:
... Tom Hale the baker painted his door green last spring ...
... the river near the house of Ann Hale was full of fish ...
```python
FINAL("green")
```
To count lines, filter them in Python: `sum(1 for l in context.splitlines() if "x" in l.lower())`.
Search for one or two distinctive words, not a whole sentence. Do not repeat a cell you already ran."""

ROOT_FIRST_USER = """`context` has {chars} characters (about {tokens} tokens), {lines} lines{docs}. It starts with:
{preview}

{example}Question: {question}
{strategy}{keywords}Write the first code block."""

STRATEGY_HINT = "This question is of the kind of the example ({when}): follow its steps.\n"
KEYWORDS_HINT = "Distinctive words from the question: {words}. Search for ONE of them at a time.\n"


_STOP = frozenset(
    "what which who whom whose when where why how does did do is are was were the a an of in on at to for from "
    "with by about into than then this that these those there their them they his her its our your my and or "
    "not no yes be been being have has had can could would should will shall may might must text context "
    "answer question tell give find many much number".split()
)


def question_keywords(question: str, k: int = 3) -> list[str]:
    """Words worth searching for: hyphenated/digit words, then capitalised names, then long rare words.

    Why: a small root otherwise searches for a word it saw in the preview (observed: "evening" from filler
    text) instead of the key of the question; naming the candidates makes the right first search the easy one.
    """
    words = re.findall(r"[A-Za-z0-9][\w'-]*[A-Za-z0-9]|[A-Za-z0-9]", question)
    scored: list[tuple[int, int, str]] = []
    seen: set[str] = set()
    for i, w in enumerate(words):
        w = w.strip("'-")
        low = w.lower()
        if low in seen or low in _STOP or len(w) < 3:
            continue
        seen.add(low)
        if "-" in w or "_" in w or any(c.isdigit() for c in w):
            score = 3
        elif w[0].isupper() and i > 0:
            score = 2
        elif len(w) >= 5:
            score = 1
        else:
            continue
        scored.append((score, i, w))
    best = sorted(scored, key=lambda t: (-t[0], t[1]))[:k]
    return [w for _, _, w in best]  # most distinctive first: small models take the first one


# A "reply NOT FOUND when the text lacks the answer" rule here made Qwen2.5-Coder-0.5B answer NOT FOUND for texts
# that held the answer (the demo, a needle); only the engine's own evidence question carries that rule.
WORKER_SYSTEM = "You are a careful assistant. Answer the question using only the given text. Be brief."
NOT_FOUND = "NOT FOUND"
EVIDENCE_QUESTION = (
    "Question: {question}\nAnswer from the text below only. If it does not contain the answer, reply exactly: "
    "NOT FOUND\nText:\n{text}"
)

DIRECT_TASK = "the task described in `context` (do what the text asks and give the result)"

NUDGE_NO_CODE = (
    "Your reply had no ```python code block, so nothing ran. Question: {question}\n"
    "Write ONE ```python code block. If an output already showed the answer, pass that value to FINAL, for "
    "example FINAL(answer) when it is in the variable `answer`."
)  # a quoted placeholder here was copied: FINAL("your answer") ended a counting run

CELL_OUTPUT = "Output:\n{output}\n\nQuestion: {question}\n{hint}"

HINT_NEXT = "If the output shows the answer, call FINAL(answer) now. Otherwise write the next code block."
HINT_IMPORT = (
    "The text in `context` is not an installed package: it cannot be imported. Read it with code instead: "
    "definition(name), read_file(path), files() or search(pattern)."
)
HINT_ERROR = "The code failed. Fix it (use only the functions listed) and try again."
HINT_LIMIT = "The cell hit the {limit} limit and was stopped.{reset} Do less work per cell (search, then slice)."
HINT_REPEAT = (
    "You already ran this code (or got this same output) before: running it again gives the same output. "
    "If the output above shows the answer, call FINAL(answer) now; otherwise take the next step of the example."
)
HINT_NEXT_STEP = "For example:\n```python\n{next_step}\n```"
HINT_STEPPED = (
    "Your code repeated a cell you had already run, so the next step of the example ran instead (the code above)."
)
HINT_PLANNED_LABELS = (
    "That first step was run for you: `labels[i]` is the label of `items[i]`. Now compute the answer from `items` "
    "and `labels` in Python (filter by what is written in the line with zip, count with Counter), then call FINAL."
)
HINT_PLANNED_COPIED = (
    "That is the first step again: it already ran and its output is above, so it was not run twice. `items` and "
    "`labels` are set. If that output answers the question, call FINAL with the answer now; otherwise write only "
    "the next step: Python that computes the answer from `items` and `labels`."
)
HINT_PLANNED_RETRIEVAL = (
    "That first step was run for you: the passages most about the question, read by the helper model. If its "
    "answer above answers the question, call FINAL(answer). If it names a new person or thing but not the answer, "
    "retrieve that new name and ask again."
)
HINT_BUDGET = "(Sub-calls left: {left} of {total}.)"
HINT_RESTORED = (
    "Your code assigned to {names}, which are built-in functions; the built-ins were put back. "
    "Use them as they are and give your own variables other names."
)
HINT_FINAL_NONE = "FINAL was called without an answer (None or empty). Call FINAL with the answer text."
HINT_CUT = (
    "Your reply was cut at {max_tokens} tokens before it ended, so its code was not run. "
    "Write a shorter reply: one sentence and one short code block."
)
HINT_COMPACTED = "(Older outputs were removed to save space; their full text is in the REPL list `notes`, e.g. print(notes[-1][:500]).)"

FALLBACK_ANSWER = (
    "Stop writing code now. Based only on the outputs above, reply with the answer to the question in one short "
    "line, without code. Question: {question}"
)


@dataclass(frozen=True)
class PromptMeta:
    """What the root is told about the prompt instead of the prompt itself."""

    chars: int
    tokens: int
    lines: int
    n_documents: int
    preview: str
    long_lines: int = 0  # lines of over 400 bytes (paragraphs), from the host's scan


def root_system(max_sub_chars: int, max_batch: int, *, sub_calls: bool = True) -> str:
    """The static part of the root's prompt: the same tokens for every run of one RLM configuration."""
    if not sub_calls:
        return ROOT_SYSTEM_NO_SUB
    return ROOT_SYSTEM.format(max_sub_chars=f"{max_sub_chars:,}", max_batch=max_batch)


def root_first_user(
    question: str,
    meta: PromptMeta,
    shape: Shape | None = None,
    example: str = "",
    keywords: bool = True,
    preview_chars: int = 250,
) -> str:
    """The first message: the prompt's facts, the worked example (``example`` or the shape's) and the question.

    ``keywords=False`` when the engine has run the first step itself: a search hint then pulls the root away from
    the step after it.
    """
    preview = meta.preview.strip()[:preview_chars] or "(empty)"
    strategy = STRATEGY_HINT.format(when=shape.when) if shape is not None else ""
    example = example or (shape.example if shape is not None else "")
    # keywords steer a search; a two-step question retrieves with the whole question (a keyword found other pages)
    kinds = ("lookup", "code")
    words = question_keywords(question) if keywords and (shape is None or shape.key in kinds) else []
    kw = KEYWORDS_HINT.format(words=", ".join(f'"{w}"' for w in words)) if words else ""
    docs = f", {meta.n_documents} documents: context[i] is document i" if meta.n_documents > 1 else ""
    return ROOT_FIRST_USER.format(
        example=f"{example}\n\nNow your task. " if example else "",
        question=question,
        preview=preview,
        strategy=strategy,
        keywords=kw,
        chars=f"{meta.chars:,}",
        tokens=f"{meta.tokens:,}",
        lines=f"{meta.lines:,}",
        docs=docs,
    )
