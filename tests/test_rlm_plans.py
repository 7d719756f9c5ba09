"""The engine's planned first step of an aggregation (:mod:`engine.plans`): when it runs, what it asks, what the
root sees. The loop tests use a scripted root that claims grammar support, so the shape and label calls happen."""

from __future__ import annotations

import json
import random

from engine import plans
from engine import prompts as P
from engine.backends.base import Message
from engine.backends.scripted import ScriptedBackend
from engine.environment import SandboxEnvironment
from engine.plans import LABELS_SYSTEM, context_sentences, entries_are_lines, is_list, quoted_labels
from engine.rlm import RLM
from engine.strategies import CLASSIFY_SYSTEM, RETRIEVE_AND_ASK
from engine.trace import read_events
from tests.test_rlm_loop import DOC, Q, _wasm_available, code

SPORT = ["The striker scored twice in the final match.", "She swam fifty laps in the pool today."]
OTHER = ["Heavy rain flooded the streets overnight.", "I baked fresh bread with honey this morning."]


def _lines(n_sport: int, n_other: int) -> str:
    rng = random.Random(3)
    lines = [rng.choice(SPORT) for _ in range(n_sport)] + [rng.choice(OTHER) for _ in range(n_other)]
    rng.shuffle(lines)
    return "\n".join(f"{i:03d} | {line}" for i, line in enumerate(lines))


def _meta(lines: int, long_lines: int = 0, chars: int = 0, docs: int = 1) -> P.PromptMeta:
    return P.PromptMeta(chars=chars, tokens=0, lines=lines, n_documents=docs, preview="", long_lines=long_lines)


class _Root(ScriptedBackend):
    """A root whose shape and label calls get fixed answers; its main turns come from ``turns``."""

    def __init__(self, kind: str, labels: list[str], turns: list[str]) -> None:
        self.kind, self.labels, self.turns = kind, labels, list(turns)
        self.main_calls: list[list[Message]] = []
        super().__init__(self._reply, name="root")
        self.info.extra["grammar"] = True

    def _reply(self, messages) -> str:
        system = messages[0].content
        if system == CLASSIFY_SYSTEM:
            return self.kind
        if system == LABELS_SYSTEM:
            return json.dumps(self.labels)
        self.main_calls.append(list(messages))
        return self.turns.pop(0)


def _sandbox() -> type[SandboxEnvironment]:
    assert _wasm_available(), "wasm sandbox not built: python -m wasm_sandbox.build"
    return SandboxEnvironment


def _sport_worker(prompt: str) -> str:
    line = prompt.rsplit("Line: ", 1)[-1].split(" Question:")[0]
    return "yes" if any(w in line for w in ("striker", "swam")) else "no"


def test_quoted_labels_are_a_category_list():
    q = "Each review's tone is 'positive', \"negative\" or 'mixed'. How many are 'negative'? Answer with a number."
    assert quoted_labels(q) == ["positive", "negative", "mixed"]  # the apostrophe of "review's" opens nothing
    assert quoted_labels("How many lines are about 'sport'?") == []  # one quoted word is no category list
    assert quoted_labels("How many lines are about sport?") == []


def test_instruction_keeps_the_description_not_the_ask():
    labels = ["positive", "negative", "mixed"]
    q = (
        "Each line is a review whose tone is 'positive', 'negative' or 'mixed'. "
        "How many reviews are 'negative'? List the ones that are negative but mention 'mixed' feelings. "
        "Answer with a number."
    )
    # the question and the sentence naming some labels would bias the worker towards them (measured: 60 of 72)
    assert context_sentences(q, labels) == "Each line is a review whose tone is 'positive', 'negative' or 'mixed'."


def test_entries_are_short_lines_only():
    assert entries_are_lines(_meta(1000, long_lines=50))  # log lines, tickets, records (a few long ones)
    assert not entries_are_lines(_meta(300, long_lines=100))  # pages: a title line and a paragraph line each
    assert not entries_are_lines(_meta(20))  # few lines: the root writes the loop itself
    # what a question may count over: those lines, or many documents of entry size (not 100 pages)
    assert is_list(_meta(20)) and is_list(_meta(300, 100, chars=20_000, docs=100))
    assert not is_list(_meta(300, 100, chars=58_000, docs=100)) and not is_list(_meta(5))


def test_planned_step_labels_every_line_and_the_root_counts(env, tmp_path):
    root = _Root("count", ["sport", "other"], [code("FINAL(labels.count('sport'))", say="Count them.")])
    wk = ScriptedBackend(worker=_sport_worker, name="worker")
    c = RLM(root, wk, environment=env, trace=tmp_path).completion(_lines(13, 27), "How many lines are about sport?")
    assert c.answer == "13" and c.finish_reason == "final", (c.answer, c.finish_reason)
    assert c.root_turns == 1  # the planned step is not one of the root's turns
    assert c.sub_calls == 40 and c.sub_calls_by_kind == {"classify": 40}
    # the root's first main call shows the planned code as its own reply, the counts, and what to do next
    msgs = root.main_calls[0]
    assert msgs[-2].role == "assistant" and "labels = classify(items, label_set, about)" in msgs[-2].content
    assert "40 lines labelled: [('other', 27), ('sport', 13)]" in msgs[-1].content
    assert P.HINT_PLANNED_LABELS in msgs[-1].content
    events = read_events(c.trace_path)
    planned = [e for e in events if e["event"] == "planned_step"]
    assert len(planned) == 1 and "classify" in planned[0]["code"]
    assert planned[0]["setup"] == "label_set = ['sport', 'other']\nabout = 'Which label does this line have?'"


def test_quoted_categories_skip_the_label_call(env):
    q = "Each line is about 'sport', 'weather' or 'food'. Which of them is the most common? Answer with it."
    root = _Root("count", ["wrong"], [code("FINAL(Counter(labels).most_common(1)[0][0])")])

    def worker(prompt: str) -> str:
        line = prompt.rsplit("Text: ", 1)[-1]
        return "sport" if any(w in line for w in ("striker", "swam")) else "weather"

    wk = ScriptedBackend(worker=worker, name="worker")
    c = RLM(root, wk, environment=env, trace=False).completion(_lines(25, 15), q)
    assert c.answer == "sport", (c.answer, c.finish_reason)
    assert not any(m[0].content == LABELS_SYSTEM for m in root.chat_calls)
    # the worker is told what the lines are (the description) but not what is asked
    prompt = wk.batch_calls[0][1][0]
    assert prompt.startswith("Each line is about 'sport', 'weather' or 'food'. Which label does this line have?")
    assert "most common" not in prompt


def test_what_is_planned_follows_the_shape_and_the_text(tmp_path):
    env = _sandbox()  # retrieve() is the real sandbox's (BM25 on the host)
    pages = "\n".join("A long page about the history of a town. " * 12 for _ in range(40))
    entries = _lines(5, 35)
    cases = [
        ("count", ["sport", "other"], pages, "lookup", RETRIEVE_AND_ASK),  # one text of pages is no list to count
        ("find", [], entries, "lookup", RETRIEVE_AND_ASK),
        ("twostep", [], entries, "multihop", RETRIEVE_AND_ASK),
        ("count", [], entries, "aggregate", None),  # nothing to label: code decides, the root writes it all
    ]
    for kind, labels, prompt, shape, planned in cases:
        root = _Root(kind, labels, [code("FINAL('done')")])
        wk = ScriptedBackend(worker="yes", name="worker")
        c = RLM(root, wk, environment=env, trace=tmp_path).completion(
            prompt, "Which lines tell of the striker or of the history of the town?"
        )
        assert c.answer == "done" and c.sub_calls == (planned is not None), (kind, labels, c.sub_calls)
        events = read_events(c.trace_path)
        assert [e["shape"] for e in events if e["event"] == "strategy"] == [shape], (kind, labels)
        assert [e["code"] for e in events if e["event"] == "planned_step"] == ([planned] if planned else [])


def test_planned_retrieval_then_final(tmp_path, monkeypatch):
    env = _sandbox()
    root = _Root("find", [], [code("FINAL(answer)")])
    wk = ScriptedBackend(worker={"Text:": "green"}, name="worker")
    c = RLM(root, wk, environment=env, trace=tmp_path).completion(DOC, Q)
    assert c.answer == "green" and c.root_turns == 1 and c.sub_calls == 1
    assert "door green" in wk.batch_calls[0][1][0]  # the question's best passage went to the worker
    assert P.HINT_PLANNED_RETRIEVAL in root.main_calls[0][-1].content
    # past the size where building the index is cheap, the root searches itself
    monkeypatch.setattr(plans, "MAX_RETRIEVE_PLAN_CHARS", len(DOC) - 1)
    root = _Root("find", [], [code("FINAL('self')")])
    c = RLM(root, wk, environment=env, trace=False).completion(DOC, Q)
    assert c.answer == "self" and c.sub_calls == 0


def test_wall_clock_scales_with_the_entries(env, tmp_path):
    """A default deadline grows with an aggregation's entries; one the caller set is kept."""
    root = _Root("count", [], [code("FINAL('done')")] * 2)
    wk = ScriptedBackend(worker="yes", name="worker")
    rlm = RLM(root, wk, environment=env, trace=tmp_path)
    c = rlm.completion(_lines(100, 900), "How many lines are from 2023?")
    events = read_events(c.trace_path)
    start = next(e for e in events if e["event"] == "run_start")
    scaled = next(e for e in events if e["event"] == "budget_scaled")
    assert c.answer == "done" and start["limits"]["max_wall_s"] == 600
    assert scaled["items"] == 1000 and scaled["max_wall_s"] == 1300 and scaled["max_sub_calls"] == 1100
    c = rlm.completion(_lines(100, 900), "How many lines are from 2023?", limits={"max_wall_s": 60})
    scaled = next(e for e in read_events(c.trace_path) if e["event"] == "budget_scaled")
    assert "max_wall_s" not in scaled


def test_a_copy_of_the_planned_retrieval_accepts_its_answer(tmp_path):
    """The root re-sends the engine's step verbatim: it has no next step, so the step's answer is the run's."""
    root = _Root("find", [], [code(RETRIEVE_AND_ASK)])
    wk = ScriptedBackend(worker={"Text:": "green"}, name="worker")
    c = RLM(root, wk, environment=_sandbox(), trace=tmp_path).completion(DOC, Q)
    assert c.finish_reason == "final" and not c.partial and c.answer == "green"
    assert c.sub_calls == 1 and c.root_turns == 1  # the copy was not run again
    events = read_events(c.trace_path)
    assert sum(e["event"] == "cell" for e in events) == 1
    assert [e["answer"] for e in events if e["event"] == "plan_accepted"] == ["green"]
    # a step that printed nothing gives nothing to accept: the run stops as a loop, answering from what it has
    root = _Root("find", [], [code(RETRIEVE_AND_ASK), "no idea"])
    wk = ScriptedBackend(worker={"Text:": ""}, name="worker")
    c = RLM(root, wk, environment=_sandbox(), trace=False).completion(DOC, Q)
    assert c.finish_reason == "loop_detected" and c.partial


class _ScoringRoot(_Root):
    """A root that scores the kinds, as the llama backend does (the reply is the likeliest kind)."""

    def __init__(self, turns: list[str]) -> None:
        super().__init__("", [], turns)
        self.kind_questions: list[str] = []

    def _reply(self, messages) -> str:
        if messages[0].content != CLASSIFY_SYSTEM:
            return super()._reply(messages)
        self.kind_questions.append(messages[-1].content)
        return '{"find": 0.35, "count": 0.6, "twostep": 0.05}'


def test_the_kind_is_scored_for_the_asking_sentences_only(env, tmp_path):
    """The entries' description before the ask is not shown to the kind call: it made a 1.5B root call "which label
    is the most common among all lines?" a find."""
    root = _ScoringRoot([code("FINAL('done')")])
    wk = ScriptedBackend(worker="yes", name="worker")
    q = "Each line is a note a user wrote on a date. Which user wrote the most notes? Answer with the id."
    c = RLM(root, wk, environment=env, trace=tmp_path).completion(_lines(5, 35), q)
    assert c.answer == "done"
    assert root.kind_questions == ["Question: Which user wrote the most notes? Kind:"]
    assert [e["shape"] for e in read_events(c.trace_path) if e["event"] == "strategy"] == ["aggregate"]


def test_a_copy_of_the_planned_labelling_is_not_run_again(env, tmp_path):
    """The root re-sends the labelling step: it is told the step ran (its output is above) and writes the next one."""
    step = plans.first_step(["sport", "other"], "Which label does this line have?").code
    root = _Root("count", ["sport", "other"], [code(step), code("FINAL(labels.count('sport'))")])
    wk = ScriptedBackend(worker=_sport_worker, name="worker")
    c = RLM(root, wk, environment=env, trace=tmp_path).completion(_lines(13, 27), "How many lines are about sport?")
    assert c.answer == "13" and c.finish_reason == "final"
    assert P.HINT_PLANNED_COPIED in root.main_calls[1][-1].content
    cells = [e for e in read_events(c.trace_path) if e["event"] == "cell"]
    assert len(cells) == 2 and c.sub_calls == 40  # the planned step and the FINAL; the copy was not run
    # copied again and again: stopped as a loop, as any repeat is
    root = _Root("count", ["sport", "other"], [code(step)] * 3 + ["13"])
    c = RLM(root, wk, environment=env, trace=False).completion(_lines(13, 27), "How many lines are about sport?")
    assert c.finish_reason == "loop_detected" and c.root_turns <= 3
