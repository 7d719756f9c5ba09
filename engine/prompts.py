"""The turn messages of the root loop and the worker's prompts, shared by both plan modes.

The system prompts, worked examples and first message live in :mod:`engine.strategy.prompts` (they differ per
plan mode). What is here repeats the question and the next step on every turn, because a 1.5B root forgets.
"""

from __future__ import annotations

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
    "If the output above shows the answer, call FINAL(answer) now; otherwise write a different next step."
)
NOT_RERUN = "(not run again: this cell just ran, and its output is above)"
HINT_STEP_REFUSED = (
    "The step was refused and the reason is above: revise that step (another pattern, other terms, fewer items) "
    "instead of repeating it."
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
