"""Task shapes and the worked example for each: how a small root is pointed at the right decomposition.

Why shapes: a 1.5B root copies the shape of the example it is shown. One needle-shaped example made it search for
keywords and ask one worker call whatever the question was (a counting question over 300 tickets got "4" for a
truth of 56). So there is one worked example per shape, and a run is shown only the one that fits its question, in
its first message: with all four in the system prompt the 1.5B root followed the first whatever it was told.

How the shape is chosen, without a regex on the question's wording: facts about the prompt decide first (a prompt
that concatenates source files is a code question), then one short root call constrained by a grammar to the
kinds (about 0.5 s on a CPU once its few-shot prompt is cached; the kinds are scored, no word is generated),
asked about the sentences that ask (:func:`choose_shape`). A backend that cannot constrain its output
(a scripted test model) skips the call and the run gets the general lookup example.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.backends.base import Backend, Message, SamplingParams
from engine.prompts import DIRECT_TASK

if TYPE_CHECKING:
    from engine.run import Run


# the next step of a lookup or a two-step question when the root stalls: passages by meaning, then the worker
RETRIEVE_AND_ASK = (
    "passages = [p for pos, p in retrieve(question, k=4)]\n"
    'answer = llm_query("Text:\\n" + "\\n\\n".join(passages) + "\\n\\nQuestion: " + question)\n'
    "print(answer)"
)


@dataclass(frozen=True)
class Shape:
    key: str
    when: str  # one line for the classifier and the root
    example: str  # the worked example shown with the question
    next_step: str  # code suggested when the root repeats itself instead of moving on


LOOKUP = Shape(
    "lookup",
    "find one fact stated somewhere in the text",
    """Example (find one fact). Question: What colour is the door of the baker Tom Hale?
```python
hits = [s for pos, s in search(r"hale", max_hits=10, width=150, ignore_case=True)]
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
If search finds nothing, try one other word, or retrieve(question) to find passages by meaning.""",
    RETRIEVE_AND_ASK,
)

# The lookup example when the engine has run the retrieval for the root (engine.plans): its first step is that
# step, so the root's next one is FINAL. Shown the search example after it, the root took the search example's
# second step (asking the worker again, reworded) and on one comparison turned a right answer into a wrong one.
LOOKUP_RETRIEVED_EXAMPLE = f"""Example (find one fact). Question: What colour is the door of the baker Tom Hale?
```python
{RETRIEVE_AND_ASK}
```
Output:
green
```python
FINAL(answer)
```
If the answer says the text does not tell, search for one distinctive word of the question and ask again."""

AGGREGATE = Shape(
    "aggregate",
    "count, list, compare or summarise many entries or lines",
    """Example (count many entries). Question: Which user wrote the most tickets about a late delivery?
```python
from collections import Counter
items = [l for l in context.splitlines() if l.strip()]
labels = classify(items, ["late delivery", "other"], "What is the ticket about?")
print(len(items), "lines labelled:", Counter(labels).most_common())
print("first line:", items[0])
```
Output:
300 lines labelled: [('other', 244), ('late delivery', 56)]
first line: 2023-05-02 | User: 42 | my parcel came a week late
```python
users = Counter(re.search(r"User: (\\w+)", l).group(1) for l, lab in zip(items, labels) if lab == "late delivery")
print(users.most_common(3))
```
Output:
[('42', 7), ('17', 5), ('8', 3)]
```python
FINAL(users.most_common(1)[0][0])
```
classify asks the helper model about every item; labels[i] is the label of items[i]. What a line is about is decided
by classify, never by a word test (a ticket about a late delivery need not say "delivery"). What is written in the
line (a user, a date) is read in Python from the line, with zip over items and labels, in the format the first
line shows. One label's count: labels.count("late delivery").""",
    "",  # no generic next step: the labels and the count depend on the question
)

MULTIHOP = Shape(
    "multihop",
    "needs two steps: find one thing, then a fact about that thing",
    """Example (two steps). Question: In which city is the office of the manager of Ann Lee?
```python
passages = [p for pos, p in retrieve(question, k=4)]  # the whole question
answer = llm_query("Text:\\n" + "\\n\\n".join(passages) + "\\n\\nQuestion: " + question)
print(answer)
```
Output:
Bo Chan is the manager; the text does not say where his office is.
```python
passages += [p for pos, p in retrieve("Bo Chan office", k=3)]
answer = llm_query("Text:\\n" + "\\n\\n".join(passages) + "\\n\\nQuestion: " + question)
print(answer)
```
Output:
Oslo
```python
FINAL(answer)
```
retrieve finds passages by meaning. When an output names a new person or thing but not the answer, retrieve that
new name (not words of the question) and ask again.""",
    RETRIEVE_AND_ASK,
)

# The code example's second step, for a root that repeats itself: the worker over the definition it found, or (when
# it found none: seen, the root wrote the class statement from the question and never called definition, so a step
# reading ``d`` failed with a NameError) over the question's best passages.
CODE_NEXT_STEP = (
    'd = globals().get("d") or {"source": "\\n\\n".join(p for pos, p in retrieve(question, k=4))}\n'
    'answer = llm_query("Code:\\n" + d["source"][:4000] + "\\n\\nQuestion: " + question)\n'
    "print(answer)"
)

CODE = Shape(
    "code",
    "about source code: functions, classes, parameters, files",
    """Example (source code). Question: What is the default value of timeout in `connect` (net/client.py)?
A. 10 B. 30 C. None D. 5
```python
d = definition("connect")
print(d["path"], d["line"])
print(d["source"][:800])
```
Output:
net/client.py 12
def connect(host, timeout=30, retries=2):
```python
answer = llm_query("Code:\\n" + d["source"][:4000] + "\\n\\nQuestion: " + question)
print(answer)
```
Output:
B
```python
FINAL(answer)
```
The text is files, not an installed package: never import it. Use definition(name) for a function, class or
method (e.g. definition("Client.connect")), read_file(path) for a file, files() for the paths. When the question
quotes text, search for its first words: search(re.escape("first words of the quote")).""",
    CODE_NEXT_STEP,
)

SHAPES = (LOOKUP, AGGREGATE, MULTIHOP, CODE)

# Few-shot, in a system message (its KV state is shared across runs, so a call costs ~0.5 s on a CPU), answered
# with one word under a grammar. Measured on Qwen2.5-Coder-1.5B: words beat letters, and a grammar whose words
# start with a space forced unnatural tokens and picked the wrong kind for 7 of 9 questions.
CLASSIFY_SYSTEM = """Sort the question into one kind:
find: the answer is one fact written somewhere in the text
count: the answer needs many entries or lines of the text (how many, which ones, list, compare, most, total)
twostep: first find one thing, then a fact about that thing

Question: What colour is the door of the baker Tom Hale? Kind: find
Question: How many of the reviews are positive? Kind: count
Question: Which users asked about refunds more than twice? Kind: count
Question: Where was the author of the book Blue Hills born? Kind: twostep
Question: Which opened first, the Elm Bridge or the Tay Tunnel? Kind: twostep
Question: What is the river, near which the painter of The Red Mill lived, called? Kind: twostep
Question: What is the password of the user named Arno? Kind: find"""
# No "code" kind: that is decided by the prompt (source files in it), never by the question; asked, the 1.5B root
# called two of three HotpotQA questions over plain pages "code".
KIND_TO_SHAPE = {"find": LOOKUP, "count": AGGREGATE, "twostep": MULTIHOP}
KINDS = tuple(KIND_TO_SHAPE)
SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


def asked_sentences(question: str) -> str:
    """The sentences of ``question`` that ask (end with "?"); the whole question when none does."""
    return " ".join(s for s in SENTENCE_END.split(question.strip()) if s.endswith("?")) or question


def supports_grammar(backend: Backend) -> bool:
    """Backends that constrain sampling with a GBNF grammar (llama.cpp in process, llama.cpp-style servers)."""
    return bool(backend.info.extra.get("grammar", backend.info.backend in ("llama", "openai")))


def choose_shape(run: Run, n_files: int, countable: bool = True) -> Shape:
    """The shape of the run's question: from the prompt's structure, else one root call choosing a kind.

    The call sees only the sentences that ask. Measured with the 1.5B root on 42 questions (needles, 16 OOLONG-like
    aggregations and pairs, 12 HotpotQA, 10 hand-written): the whole question was right for 31, and called "which
    label is the most common among all lines?" a find, the entries' description before it ("each line of the
    context is a general-knowledge question ...") reading like a lookup; the asking sentences alone, 32, with every
    find right and every OOLONG-like aggregation a count (pairs: 3 of 4). Calibrated against an empty question (contextual calibration),
    34 were right but four finds became counts, and a count over a list of lines labels every line: a needle
    among 600 lines cost two minutes and was not found. So the kind is not calibrated.

    ``countable``: the text is a list of entries (:func:`engine.plans.is_list`). A "count" verdict on pages is
    taken as a lookup: the classifier called 3 of 12 HotpotQA questions "count", and those runs, shown the counting
    example, ended without an answer.
    """
    if n_files >= 2:
        return CODE
    root = run.rlm.root
    if not supports_grammar(root) or run.question == DIRECT_TASK:
        return LOOKUP
    msgs = [Message("system", CLASSIFY_SYSTEM), Message("user", f"Question: {asked_sentences(run.question)} Kind:")]
    try:
        kind = run.chat(msgs, SamplingParams(max_tokens=4, choices=KINDS), None).text.strip().lower()
    except Exception:  # noqa: BLE001 - a failed hint must not fail the run; the general example still works
        return LOOKUP
    shape = KIND_TO_SHAPE.get(kind, LOOKUP)
    return LOOKUP if shape is AGGREGATE and not countable else shape


# The root's reply as the prompt asks for it: at most one short sentence (no calls in it), then one Python block.
# Without it the 1.5B root answered a question ending "answer yes or no if the question asks so" with a bare "Yes"
# on its first turn, three turns running (no_code, never having read the text). A block with no sentence before it
# made the root count lines by a word test instead of classify(); a sentence may hold no call, because a root
# allowed one wrote "Final(answer)" there and junk code after it. The block is never empty: allowed one, the root
# wrote "A. Protocol[_KT_co, _VT_co] is the first base class of ```python\n```" three turns running (no_code).
REPLY_GRAMMAR = 'root ::= [^`\\n()]{0,200} "\\n"? "```python\\n" code "```"\ncode ::= [^` \\t\\n] [^`]*\n'
