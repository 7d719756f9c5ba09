"""Pairs of entities by a condition on the categories a question lists (engine.strategy.pairs): the condition in
plain quantifier words, the entity's field in several formats, and the step end to end with a scripted worker on
both REPLs."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from engine.backends.scripted import ScriptedBackend
from engine.rlm import RLM
from engine.strategy.pairs import pairs_asked
from engine.trace import read_events
from tests.test_rlm_loop import code

OPTS = "Each message is a 'complaint', a 'question' or 'praise'. "


@pytest.mark.parametrize(
    ("question", "entity", "first", "second"),
    [
        (OPTS + "List all pairs of user IDs where both users have at least one complaint.", "user",
         "(c['complaint'] >= 1)", None),
        (OPTS + "Which pairs of customers have no praise?", "customer", "(c['praise'] == 0)", None),
        (OPTS + "Give every pair of hosts where one host has exactly 2 questions and the other has none labelled "
         "'praise'.", "host", "(c['question'] == 2)", "(c['praise'] == 0)"),
        (OPTS + "Pairs of companies with a complaint but no question, please.", "company",
         "(c['complaint'] >= 1) and (c['question'] == 0)", None),
        (OPTS + "Find the pairs of addresses with either a question or praise.", "address",
         "(c['question'] >= 1 or c['praise'] >= 1)", None),
        (OPTS + "List the pairs of users that have both a complaint and a question.", "user",
         "(c['complaint'] >= 1 and c['question'] >= 1)", None),
        (OPTS + "Which pairs of users have more than three complaints?", "user", "(c['complaint'] > 3)", None),
    ],
)  # fmt: skip
def test_the_condition_each_entity_of_a_pair_meets(question, entity, first, second):
    got = pairs_asked(question)
    assert got is not None
    assert (got.entity, got.first, got.second) == (entity, first, second or first)


@pytest.mark.parametrize(
    "question",
    [
        OPTS + "How many complaints are there?",  # no pairs asked
        "List all pairs of users who wrote on the same day.",  # no listed categories
        OPTS + "List all pairs of users who wrote on the same day.",  # a condition on no listed category
    ],
)
def test_no_pairs_step_without_pairs_of_a_condition_on_listed_categories(question):
    assert pairs_asked(question) is None


KINDS = {"complaint": "it broke on day two, refund please", "question": "how do I reset the password",
         "praise": "I loved it, works great"}  # fmt: skip


def _worker(prompt: str) -> str:
    """Labels by the words each kind's entries hold (a real worker judges their meaning)."""
    text = prompt.rsplit("Text:", 1)[-1]
    return next((k for k, v in KINDS.items() if v in text), "praise")


def _rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    users = [str(rng.randint(100, 999)) for _ in range(16)]
    return [(rng.choice(users), rng.choice(list(KINDS))) for _ in range(n)]


def _run(env, text: str, question: str, tmp_path):
    root = ScriptedBackend([code("FINAL(answer)")] * 3, name="root")
    worker = ScriptedBackend(worker=_worker, name="worker")
    rlm = RLM(root, worker, environment=env, trace=tmp_path, plan_mode="typed")
    return rlm.completion(text, question), root


def test_both_users_meet_one_condition_decided_by_code_over_the_labels(env, tmp_path):
    """Log lines with a user field: every line labelled with the closed set, each user's counts by code, and every
    pair of users with a complaint and no praise, lower id first; the run ends at the step."""
    rows = _rows(40, seed=3)
    text = "\n".join(f"2025-03-{i % 28 + 1:02d} user={u} msg: {KINDS[k]}" for i, (u, k) in enumerate(rows))
    question = OPTS + "List all pairs of user IDs where both users have a complaint but no praise."
    c, root = _run(env, text, question, tmp_path)
    kinds = {u: {k for v, k in rows if v == u} for u, _ in rows}
    ok = sorted((u for u, ks in kinds.items() if "complaint" in ks and "praise" not in ks), key=int)
    want = list(itertools.combinations(ok, 2))
    assert want  # the seed gives some pairs
    assert c.finish_reason == "final" and not root.chat_calls
    assert c.answer == ", ".join(f"({a}, {b})" for a, b in want)
    events = read_events(c.trace_path)
    (op,) = [e for e in events if e["event"] == "operator" and e["name"] == "label"]
    assert op["n_in"] == 40 and "'other'" not in op["args"]
    assert [e["stop"] for e in events if e["event"] == "answer_in_hand"] == ["decided"]


def test_one_entity_meets_one_condition_and_the_other_another(env, tmp_path):
    """JSON lines with a "customer" field: pairs of one customer with exactly one question and another with no
    complaint, each pair once."""
    rows = _rows(40, seed=4)
    text = "\n".join(json.dumps({"customer": u, "text": KINDS[k]}) for u, k in rows)
    question = (
        OPTS + "Which pairs of customers have one customer with exactly one question and the other with no complaint?"
    )
    c, _ = _run(env, text, question, tmp_path)
    counts = {u: [k for v, k in rows if v == u] for u, _ in rows}
    p = {u for u, ks in counts.items() if ks.count("question") == 1}
    q = {u for u, ks in counts.items() if ks.count("complaint") == 0}
    want = {tuple(sorted((a, b), key=int)) for a in p for b in q if a != b}
    assert want
    got = {tuple(x.strip("() ").split(", ")) for x in c.answer.split("), (")}
    assert (got, c.finish_reason) == (want, "final")


def test_no_pairs_step_where_the_entries_name_no_such_entity(env, tmp_path):
    """ "pairs of hosts" over lines that name no host: the noun is no field of the entries, so no labelling runs."""
    rows = _rows(40, seed=5)
    text = "\n".join(f"user={u} msg: {KINDS[k]}" for u, k in rows)
    question = OPTS + "List all pairs of hosts where both hosts have a complaint."
    c, _ = _run(env, text, question, tmp_path)
    assert not [e for e in read_events(c.trace_path) if e["event"] == "operator" and e["name"] == "label"]
