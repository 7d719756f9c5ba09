"""``llm_map`` and ``classify``: batched through the budget, parsed, retried, aligned with the input."""

from __future__ import annotations

from engine.backends.base import Generation, choice_grammar
from engine.backends.scripted import ScriptedBackend
from engine.mapping import parse_label
from engine.rlm import RLM
from tests.test_rlm_loop import code, user_msgs

TICKETS = [
    "my parcel never arrived at the door",
    "I was charged twice on my card",
    "the courier left the box in the rain",
    "refund has not reached my account",
    "the app crashes when I log in",
]


def _labeller(prompt: str) -> str:
    text = prompt.rsplit("Text: ", 1)[-1].lower()
    if any(w in text for w in ("parcel", "courier", "box")):
        return "Delivery."
    if any(w in text for w in ("charged", "refund")):
        return "payment"
    return "I am not sure, maybe other"  # parseable: names exactly one label


def test_classify_counts_in_one_line(env):
    root = ScriptedBackend(
        [
            code(
                "tickets = context.splitlines()\n"
                "labels = classify(tickets, ['delivery', 'payment', 'other'])\n"
                "print(labels)\n"
                "FINAL(labels.count('delivery'))"
            )
        ],
        name="r",
    )
    wk = ScriptedBackend(worker=_labeller, name="w")
    c = RLM(root, wk, environment=env, trace=False, max_batch_width=2).completion("\n".join(TICKETS), "q")
    assert c.answer == "2" and c.finish_reason == "final"
    # 5 items and the empty text (the worker's leaning) in batches of at most 2, each drawn from the budget
    assert [len(p) for _, p in wk.batch_calls] == [2, 2, 2]
    assert wk.batch_calls[-1][1][-1].endswith("Text: \nLabel:")
    assert c.sub_calls == 6 and c.sub_calls_by_kind == {"classify": 6}


class _Flaky(ScriptedBackend):
    """Fails the first time it sees each prompt, answers the second time."""

    def __init__(self) -> None:
        super().__init__(worker=lambda p: "yes", name="w")
        self.seen: set[str] = set()

    def batch(self, system, prompts, params, **kw):  # type: ignore[override]
        gens = super().batch(system, prompts, params, **kw)
        out = []
        for p, g in zip(prompts, gens, strict=True):
            if p not in self.seen:
                self.seen.add(p)
                out.append(Generation(text="", finish_reason="error", error="flaky"))
            else:
                out.append(g)
        return out


def test_llm_map_retries_failed_items_once(env):
    root = ScriptedBackend(
        [code("r = llm_map(context.splitlines(), 'Is it about money? yes or no')\nFINAL(r.count('yes'))")], name="r"
    )
    wk = _Flaky()
    c = RLM(root, wk, environment=env, trace=False).completion("\n".join(TICKETS), "q")
    assert c.answer == "5" and c.sub_calls == 10  # every item failed once and was retried once


def test_unparsable_labels_are_none_after_one_retry(env):
    root = ScriptedBackend(
        [code("r = classify(['a', 'b'], ['cat', 'dog'])\nFINAL(sum(x is None for x in r))")], name="r"
    )
    wk = ScriptedBackend(worker="a fish", name="w")
    c = RLM(root, wk, environment=env, trace=False).completion("doc", "q")
    assert c.answer == "2" and c.sub_calls == 5  # 2 items and the empty text, then the 2 items again


def test_bad_arguments_are_clear_errors(env):
    root = ScriptedBackend([code("classify(['a'], [])"), code("llm_map(42, 'x')"), code("FINAL('ok')")], name="r")
    c = RLM(root, ScriptedBackend(name="w"), environment=env, trace=False).completion("doc", "q")
    assert c.answer == "ok"
    assert "2 to 50 distinct labels" in user_msgs(root, 1)[-1]
    assert "list" in user_msgs(root, 2)[-1]


def test_parse_label_and_grammar():
    labels = ["delivery", "payment", "other"]
    assert parse_label(" Delivery.", labels) == "delivery"
    assert parse_label("payment issue", labels) == "payment"
    assert parse_label("it is about delivery", labels) == "delivery"
    assert parse_label("delivery or payment", labels) is None
    assert parse_label("fish", labels) is None
    assert choice_grammar(['a "b"', "c"]) == 'root ::= "a \\"b\\"" | "c"'


def test_one_topic_against_other_is_asked_as_yes_no(env):
    root = ScriptedBackend(
        [code("labels = classify(context.splitlines(), ['delivery', 'other'])\nFINAL(labels.count('delivery'))")],
        name="r",
    )
    wk = ScriptedBackend(
        worker=lambda p: "yes" if any(w in p for w in ("parcel", "courier", "box")) else "no", name="w"
    )
    c = RLM(root, wk, environment=env, trace=False).completion("\n".join(TICKETS), "q")
    assert c.answer == "2"
    system, prompts = wk.batch_calls[0]
    assert all("Is this line about delivery? Answer yes or no." in p for p in prompts)
    assert "NOT FOUND" not in system  # labels get their own system prompt


def test_yes_no_labels_ask_the_instruction_itself(env):
    """``classify(items, ['yes', 'no'], instruction)``: the instruction is the question, first in every prompt (a
    shared start), never "Is this line about yes?"."""
    root = ScriptedBackend(
        [
            code(
                "m = classify(context.splitlines(), ['yes', 'no'], instruction='Does it mention a parcel?')\n"
                "FINAL(m.count('yes'))"
            )
        ],
        name="r",
    )
    wk = ScriptedBackend(worker=lambda p: "yes" if "parcel" in p.split("Text: ")[1] else "no", name="w")
    c = RLM(root, wk, environment=env, trace=False).completion("\n".join(TICKETS), "q")
    _, prompts = wk.batch_calls[0]
    assert all(p.startswith("Does it mention a parcel?\nText: ") and "about yes" not in p for p in prompts)
    assert c.answer == str(sum("parcel" in t for t in TICKETS))


def test_one_label_is_asked_against_other(env):
    """Seen from the 1.5B root: ``classify(items, ["human being"])``; one label means "is it this one?"."""
    root = ScriptedBackend([code("print(classify(['a cat', 'a car'], ['animal']))"), code("FINAL('ok')")], name="r")
    worker = ScriptedBackend(worker={"a cat": "yes", "a car": "no"}, name="w")
    c = RLM(root, worker, environment=env, trace=False).completion("doc", "q")
    assert c.answer == "ok"
    assert "['animal', 'other']" in user_msgs(root, 1)[-1]
    assert all("Is this line about animal?" in p for _, ps in worker.batch_calls for p in ps)


def test_repeated_classify_is_answered_from_the_run_cache(env):
    """A root that re-runs the labelling cell (seen: 281 lines, 150 s, to add one line) pays for it once."""
    root = ScriptedBackend(
        [
            code(
                "a = classify(context.splitlines(), ['delivery', 'payment', 'other'], 'Topic?')\n"
                "b = classify(context.splitlines(), ['delivery', 'payment', 'other'], 'Topic?')\n"
                "c = classify(context.splitlines(), ['delivery', 'payment', 'other'], 'What is it about?')\n"
                "b.append('mine')\n"  # a caller's change to its list does not reach the cache
                "d = classify(context.splitlines(), ['delivery', 'payment', 'other'], 'Topic?')\n"
                "FINAL(str(a == d == c) + ' ' + str(len(d)))"
            )
        ],
        name="r",
    )
    wk = ScriptedBackend(worker=_labeller, name="w")
    c = RLM(root, wk, environment=env, trace=False).completion("\n".join(TICKETS), "q")
    assert c.answer == "True 5", c.answer
    assert c.sub_calls == 12  # two distinct questions over five items and the empty text


def _leaning(neutral: str):
    """A worker that leans to "entity" (scored choices, as the llama backend reports them); ``neutral`` is its
    reply to the empty text."""

    def reply(prompt: str) -> str:
        text = prompt.rsplit("Text: ", 1)[-1]
        if text.startswith("\nLabel:"):
            return neutral
        if "Paris" in text:
            return '{"entity": 0.5, "location": 0.45, "human being": 0.05}'
        if "Curie" in text:
            return '{"entity": 0.6, "location": 0.1, "human being": 0.3}'
        return '{"entity": 0.8, "location": 0.1, "human being": 0.1}'

    return reply


LINES = ["Where is Paris?", "Who was Marie Curie?", "What animal is on the flag?"]
COUNTED = "from collections import Counter\nprint(Counter(classify(context.splitlines(), {labels})))"


def test_classify_calibrates_against_the_empty_text_when_it_is_a_neutral(env):
    """Raw, this worker calls every line "entity"; each line gets the label most above the empty text's."""
    root = ScriptedBackend([code(COUNTED.format(labels="['entity', 'location', 'human being']"))] * 2, name="r")
    wk = ScriptedBackend(worker=_leaning('{"entity": 0.7, "location": 0.15, "human being": 0.15}'), name="w")
    c = RLM(root, wk, environment=env, trace=False).completion("\n".join(LINES), "q")
    assert c.sub_calls == 4  # the items and the empty text
    assert "Counter({'location': 1, 'human being': 1, 'entity': 1})" in user_msgs(root, 1)[-1]


def test_classify_calibrates_against_the_mean_when_the_empty_text_rules_a_label_out(env):
    """The empty text gives "human being" 1 %: no neutral. From 20 items their mean is the leaning; fewer keep the
    most probable label."""
    neutral = '{"entity": 0.9, "location": 0.09, "human being": 0.01}'
    root = ScriptedBackend([code(COUNTED.format(labels="['entity', 'location', 'human being']"))] * 2, name="r")
    wk = ScriptedBackend(worker=_leaning(neutral), name="w")
    c = RLM(root, wk, environment=env, trace=False).completion("\n".join(LINES * 10), "q")
    assert c.sub_calls == 31
    assert "Counter({'location': 10, 'human being': 10, 'entity': 10})" in user_msgs(root, 1)[-1]
    root = ScriptedBackend([code(COUNTED.format(labels="['entity', 'location', 'human being']"))] * 2, name="r")
    c = RLM(root, wk, environment=env, trace=False).completion("\n".join(LINES), "q")
    assert "Counter({'entity': 3})" in user_msgs(root, 1)[-1]


def test_classify_keeps_the_named_label_where_the_backend_does_not_score(env):
    """An OpenAI-compatible server generates under the labels' grammar: its reply is the label, uncalibrated."""
    root = ScriptedBackend(
        [code("print(classify(context.splitlines(), ['delivery', 'payment', 'other']))"), code("FINAL('ok')")],
        name="r",
    )
    wk = ScriptedBackend(worker=_labeller, name="w")
    c = RLM(root, wk, environment=env, trace=False).completion("\n".join(TICKETS[:3]), "q")
    assert c.answer == "ok" and "['delivery', 'payment', 'delivery']" in user_msgs(root, 1)[-1]
