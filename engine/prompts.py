"""System prompt, worked example and turn messages for small local coder roots (Qwen2.5-Coder 1.5B / 0.5B).

Why it looks like this (see docs on model behaviour): small roots copy the *shape* of the example closely, repeat a
search instead of answering, and invent data instead of reading ``context``. So the prompt (1) states that the text
is only reachable through code, (2) shows one complete worked example - search, a worker call on the found snippet,
``FINAL`` - with robust patterns (case-insensitive, key words only), (3) tells the model to call ``FINAL`` as soon
as an output shows the answer. Turn messages repeat the question and the next step, because a 1.5B model forgets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT_SYSTEM = """You are a Python programmer. You answer a question about a long text that you cannot see.
The text is stored in the Python variable `context` ({chars} characters, about {tokens} tokens, {lines} lines{docs}).
The question is stored in the variable `question`. Never invent the text: read it with code.

Each reply: one short sentence, then ONE ```python code block. The code runs in a Python REPL and you see what it prints.

Functions in the REPL:
- search(pattern, max_hits=20, width=80, ignore_case=False): regex search in `context`; returns a list of (position, snippet) pairs, each snippet is the text around one match (width characters on each side).
- llm_query(prompt): asks a helper model and returns its answer as a string. Put the question AND the text it needs in the prompt (at most {max_sub_chars} characters).
- llm_query_batched(prompts): like llm_query for a list of prompts, much faster than a loop (at most {max_batch} prompts).
- FINAL(answer): call it as soon as an output shows the answer. It ends the task.

Example.
Question: What colour is the door of the baker Tom Hale?
```python
hits = [snippet for pos, snippet in search(r"hale", max_hits=10, width=150, ignore_case=True)]
print(len(hits))
for h in hits:
    print(h)
```
Output:
2
... Tom Hale the baker painted his door green last spring ...
... the river near the house of Ann Hale was full of fish ...
```python
answer = llm_query(question + " Text: " + " ".join(hits))
print(answer)
```
Output:
green
```python
FINAL(answer)
```

Second example: to count or classify many lines (here: how many lines are about animals?), ask about each line and count in Python:
```python
lines = [l for l in context.splitlines() if l.strip()]
answers = []
for i in range(0, len(lines), {max_batch}):
    answers += llm_query_batched(["Line: " + l + " Question: Is this line about animals? Answer yes or no." for l in lines[i:i+{max_batch}]], max_tokens=3)
answer = sum(a.strip().lower().startswith("yes") for a in answers)
print(answer)
```
Search for one or two distinctive words, not a whole sentence. Do not repeat a cell you already ran."""

ROOT_FIRST_USER = """`context` starts with:
{preview}

Question: {question}
{keywords}Write the first code block."""

KEYWORDS_HINT = "Distinctive words from the question to search for: {words}.\n"
AGGREGATE_HINT = (
    "This question is about many lines: do not count words. Ask llm_query_batched a yes/no question about "
    "each line, like the second example, and count the answers in Python.\n"
)
_AGGREGATE = re.compile(r"^\s*(how many|count|list (all|every)|what (fraction|percentage|share)|which lines)\b", re.I)


def is_aggregate_question(question: str) -> bool:
    """Counting/classifying questions need one small worker call per line, not a search (models.md)."""
    return bool(_AGGREGATE.search(question))


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


WORKER_SYSTEM = "You are a careful assistant. Answer the question using only the given text. Be brief."

DIRECT_TASK = "the task described in `context` (do what the text asks and give the result)"

NUDGE_NO_CODE = (
    "Your reply had no ```python code block, so nothing ran. Question: {question}\n"
    "Write ONE ```python code block. If you already know the answer from an output, write:\n"
    '```python\nFINAL("your answer")\n```'
)

CELL_OUTPUT = "Output:\n{output}\n\nQuestion: {question}\n{hint}"

HINT_NEXT = "If the output shows the answer, call FINAL(answer) now. Otherwise write the next code block."
HINT_ERROR = "The code failed. Fix it (use only the functions listed) and try again."
HINT_LIMIT = "The cell hit the {limit} limit and was stopped.{reset} Do less work per cell (search, then slice)."
HINT_REPEAT = (
    "You already ran this code (or got this same output) before: running it again gives the same output. "
    "If the output above shows the answer, call FINAL(answer) now; otherwise search for a different word "
    "from the question."
)
HINT_BUDGET = "{message}"
HINT_FINAL_NONE = "FINAL was called without an answer. Call FINAL with the answer text."

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


def root_system(meta: PromptMeta, max_sub_chars: int, max_batch: int) -> str:
    docs = f", {meta.n_documents} documents: context[i] is document i" if meta.n_documents > 1 else ""
    return ROOT_SYSTEM.format(
        chars=f"{meta.chars:,}",
        tokens=f"{meta.tokens:,}",
        lines=f"{meta.lines:,}",
        docs=docs,
        max_sub_chars=f"{max_sub_chars:,}",
        max_batch=max_batch,
    )


def root_first_user(question: str, meta: PromptMeta, preview_chars: int = 250) -> str:
    preview = meta.preview.strip()[:preview_chars] or "(empty)"
    words = question_keywords(question)
    if is_aggregate_question(question):
        kw = AGGREGATE_HINT
    else:
        kw = KEYWORDS_HINT.format(words=", ".join(f'"{w}"' for w in words)) if words else ""
    return ROOT_FIRST_USER.format(question=question, preview=preview, keywords=kw)
