"""The question inside the prompt: when a caller sends one string (a document and its question), find the task.

Why: string in, string out must hold. Sent one message with a 3,000-line document and the question at its end,
the root was told only "the task described in `context`", searched for the word "described" and ended on an
invented value (issue 17). So a long prompt with no separate question is searched, at its ends only (a few
kilobytes read, whatever the prompt's size), in this order:

1. an instruction line: a line labelled ``Question:``, ``Task:``, ``Instruction:``, ``Query:`` or ``Q:`` (the last
   one near the end, else the first near the start);
2. a trailing question: the last paragraph, when it is short and asks (ends with "?");
3. the first paragraph, when it is short and asks;
4. the last paragraph, when it is short, set apart from the body by a blank line and reads as a sentence (four or
   more words ending in ".", ":" or "!": an instruction such as "List the ids of ..." after the data, not a
   title such as "THE END");
5. the first paragraph, likewise.

"Short" is :data:`MAX_TASK_CHARS`: a task is a few sentences, while a data block (log lines, records) runs on for
pages. Nothing found: the whole prompt stays the task, as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_PROMPT_CHARS = 2_000  # a shorter prompt is read whole by the root's first cell; it needs no extraction
MAX_TASK_CHARS = 600
END_CHARS = 8_000  # characters read at each end of the prompt
_LABEL = re.compile(r"^[ \t>*#-]*(?:question|task|instructions?|query|q)[ \t]*[:：][ \t]*(\S.*)$", re.I | re.M)
_PARA = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class TaskFound:
    question: str
    where: str  # "instruction line", "trailing question", "first paragraph", "last paragraph"


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in _PARA.split(text) if p.strip()]


def _short(p: str) -> bool:
    return len(p) <= MAX_TASK_CHARS


def _sentence(p: str) -> bool:
    """A paragraph that reads as an instruction, not a title: four or more words ending like a sentence."""
    return _short(p) and len(p.split()) >= 4 and p.rstrip()[-1:] in ".:!"


def find_task(head: str, tail: str, total_chars: int) -> TaskFound | None:
    """The task stated in a prompt whose first and last characters are ``head`` and ``tail`` (may overlap)."""
    if total_chars < MIN_PROMPT_CHARS:
        return None
    labelled = _LABEL.findall(tail) or _LABEL.findall(head)
    if labelled:
        line = (labelled[-1] if _LABEL.findall(tail) else labelled[0]).strip()
        if line and _short(line):
            return TaskFound(line, "instruction line")
    last = _paragraphs(tail)
    first = _paragraphs(head)
    lp = last[-1] if len(last) > 1 else ""
    fp = first[0] if len(first) > 1 else ""
    if lp and _short(lp) and lp.rstrip().endswith("?"):
        return TaskFound(lp, "trailing question")
    if not lp and last:  # no blank line before the end: a question on the last line still counts
        tail_line = last[-1].rstrip().rsplit("\n", 1)[-1].strip()
        if tail_line.endswith("?") and _short(tail_line):
            return TaskFound(tail_line, "trailing question")
    if fp and _short(fp) and fp.rstrip().endswith("?"):
        return TaskFound(fp, "first paragraph")
    if lp and _sentence(lp):
        return TaskFound(lp, "last paragraph")
    if fp and _sentence(fp):
        return TaskFound(fp, "first paragraph")
    return None
