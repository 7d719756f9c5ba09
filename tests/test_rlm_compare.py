"""A choice between named things decided by code (engine.strategy.compare): the spans, the records in three record
syntaxes, the field and the op, and the first step end to end with a scripted root on both REPLs."""

from __future__ import annotations

import json
import random

from engine.backends.scripted import ScriptedBackend
from engine.rlm import RLM
from engine.strategy.compare import asks_choice, candidates, compared_field, direction, fields_in, options_found
from engine.trace import read_events
from tests.test_rlm_loop import code

NOTE = "quarterly review pending; scope agreed with the steering group in the spring"
NAMES = [f"{a} {b}" for a in ("Amber", "Basil", "Cedar", "Dune", "Elm") for b in ("Roth", "Sato", "Vega", "Wu")]


def _projects(seed: int = 3) -> list[tuple[str, str, int]]:
    rng = random.Random(seed)
    return [(n, f"20{rng.randrange(19, 25)}-0{rng.randrange(1, 9)}-1{rng.randrange(0, 9)}", rng.randrange(20, 900) * 1000)
            for n in NAMES]  # fmt: skip


def _table(rows, filler: int = 0) -> str:
    head = "| project | start date | budget (EUR) |\n|---|---|---|\n"
    pad = "".join(f"| Filler {i} | 2020-01-01 | 1,000 |\n" for i in range(filler))
    return head + pad + "".join(f"| {n} | {d} | {b:,} |\n" for n, d, b in rows)


def _records(rows) -> str:
    return (
        "\n\n".join(f"Project: {n}\nLead: someone\nStarted: {d}\nBudget: EUR {b:,}\nNotes: {NOTE}" for n, d, b in rows)
        + "\n"
    )


def _jsonl(rows) -> str:
    return "\n".join(json.dumps({"project": n, "start": d, "budget_eur": b, "note": NOTE}) for n, d, b in rows) + "\n"


def test_the_things_compared_are_the_spans_beside_a_connector():
    q = "Of the projects Harbor Keller and Iris Ueda, which had the larger budget?"
    assert asks_choice(q) and not asks_choice("Which project had a budget over 2,000?")
    assert not asks_choice("What is the larger budget of Harbor Keller?")  # a comparative, nothing offered
    spans = candidates(q)
    assert spans[0][:2] == ["projects Harbor Keller", "Harbor Keller"] and spans[1][0] == "Iris Ueda"
    counts = {"projects Harbor Keller": 0, "Harbor Keller": 3, "Iris Ueda": 1, "Keller": 40, "Ueda": 9}
    assert options_found(spans, counts) == ["Harbor Keller", "Iris Ueda"]
    spans = candidates("Compare Umbra Ortega with Beacon Engel and name the one that had the smaller budget.")
    assert ["Umbra Ortega", "Beacon Engel"] == options_found(spans, {"Umbra Ortega": 1, "Beacon Engel": 1})


def test_the_comparative_asks_for_max_or_min_of_numbers_and_of_dates():
    assert direction("which had the larger budget", dated=False) == "max"
    assert direction("which had fewer staff", dated=False) == "min"
    assert direction("which started earlier", dated=True) == "min"
    assert direction("which one is older", dated=True) == "min" and direction("who is older", dated=False) == "max"
    assert direction("the most recent release", dated=True) == "max"
    assert direction("larger or smaller", dated=False) is None and direction("which one", dated=False) is None


def test_the_field_beside_the_comparative_is_compared_and_names_may_contain_each_other():
    """ "delivered later" names the compared field, not "shipment" (which would name ``shipped``); timestamps are
    dates; one option's name inside another's ("quillmap", "quillmap-core") keeps both."""
    q = "Compare shipment ZX-1 with shipment ZX-2 and name the one that was delivered later."
    recs = [["", '{"id": "ZX-1", "shipped": "2024-05-22T07:45:00Z", "delivered": "2024-06-03T16:20:00Z"}'],
            ["", '{"id": "ZX-2", "shipped": "2024-05-27T13:10:00Z", "delivered": "2024-05-29T11:05:00Z"}']]  # fmt: skip
    got = compared_field(q, ["ZX-1", "ZX-2"], recs)
    assert got is not None and (got.field, got.op) == ("delivered", "max")
    spans = candidates("Of quillmap, quillmap-core and quill-map, which package has more weekly downloads?")
    counts = {"quillmap": 3, "quillmap-core": 1, "quill-map": 1}
    assert options_found(spans, counts) == ["quillmap", "quillmap-core", "quill-map"]


def test_fields_of_a_row_and_of_a_record():
    row = fields_in("| project | budget (EUR) |", "| Iris Ueda | 1,000,000 |")
    assert [(n, v) for n, v, _ in row] == [("project", "Iris Ueda"), ("budget (EUR)", "1,000,000")]
    rec = fields_in("", "Project: Iris Ueda\nBudget: EUR 1,000\n")
    assert [(n, v) for n, v, _ in rec] == [("Project", "Iris Ueda"), ("Budget", "EUR 1,000")]
    recs = [["", "Name: A\nBudget: 5"], ["", "Name: B\nBudget: 7"], ["", "| project | budget |"]]
    got = compared_field("Which had the larger budget, A, B or project?", ["A", "B", "project"], recs)
    assert got is not None and got.options == ["A", "B"] and got.field == "Budget" and got.op == "max"
    assert compared_field("Which had the larger budget, A or B?", ["A", "B"], [["", "Budget: 5"], ["", "x"]]) is None


def _run(env, text: str, question: str, tmp_path):
    root = ScriptedBackend([code("FINAL(answer)")], name="root")
    worker = ScriptedBackend(worker={}, name="worker")
    rlm = RLM(root, worker, environment=env, trace=tmp_path, plan_mode="typed")
    return rlm.completion(text, question), root, worker


def test_a_comparison_is_decided_by_code_in_three_record_syntaxes(env, tmp_path):
    """A table whose header is far above the rows, ``Name: value`` records and JSON lines: each thing's record, the
    named field, and the extreme by code, with no worker call; the run ends final on it."""
    rows = _projects()
    a, b = rows[5], rows[17]
    richer = a[0] if a[2] > b[2] else b[0]
    earlier = a[0] if a[1] < b[1] else b[0]
    texts = {"table": _table(rows, filler=900), "records": _records(rows), "jsonl": _jsonl(rows)}
    for kind, text in texts.items():
        for question, want, field in (
            (f"Which project had the larger budget, {a[0]} or {b[0]}?", richer, "budget"),
            (f"Between {b[0]} and {a[0]}, tell me which one started earlier.", earlier, "start"),
        ):
            c, root, worker = _run(env, text, question, tmp_path / kind / field)
            assert (c.answer, c.finish_reason) == (want, "final"), (kind, question)
            assert not worker.batch_calls and not worker.chat_calls, kind  # no worker reading
            assert not root.chat_calls, kind  # code decided it: the run ends at the step
            events = read_events(c.trace_path)
            (shown,) = [e["code"] for e in events if e["event"] == "planned_step"]
            assert "reduce(values, " in shown and "by=options)" in shown
            (step,) = [e["output"] for e in events if e["event"] == "cell"]
            assert f"answer: {want}" in step and field in step.lower()
            assert [e["stop"] for e in events if e["event"] == "answer_in_hand"] == ["decided"]
            ops = [e["name"] for e in events if e["event"] == "operator"]
            assert ops[-2:] == ["extract", "reduce"], kind


def test_a_comparison_whose_field_no_word_names_is_decided_by_the_unit_of_its_comparative(env, tmp_path):
    """E-mails whose amount is a `Total:` line, catalogue bullets and prose: the question names no field, and the
    comparative says what is measured ("cheaper": an amount of money, "heavier": a weight, "older": a year)."""
    filler = "\n\n".join(f"Note {i}: the depot was swept and the gate repainted." for i in range(300))
    senders = [f"Supplier {i} Ltd" for i in range(120)]
    senders[30], senders[90] = "Halvorsen Tooling", "Brennick & Sons"
    totals = {"Halvorsen Tooling": "1,412.50", "Brennick & Sons": "980.00"}
    mails = "\n\n".join(
        f"From: {n} <ar{i}@example.com>\nSubject: invoice {i}\n\nHello, please find our invoice attached.\n"
        f"Total: €{totals.get(n, f'{100 + i * 37 % 900}.00')}, due in 30 days."
        for i, n in enumerate(senders)
    )
    bullets = f"{filler}\n- K-220: steel frame, weight 1.85 kg, 12 V\n- K-2200: alloy frame, weight 2.1 kg, 24 V\n"
    prose = (
        f"{filler}\n\nHarlowe Bridge crosses the Tay; it opened on 17 September 1887 after six years of work.\n\n"
        "Harlow Bridge, upstream, was built in 1867 and rebuilt once.\n"
    )
    for text, question, want in (
        (mails, "Halvorsen Tooling or Brennick & Sons: whose invoice was cheaper?", "Brennick & Sons"),
        (bullets, "Which model is heavier, the K-220 or the K-2200? Answer with the name only.", "K-2200"),
        (prose, "Which bridge is older, Harlowe Bridge or Harlow Bridge?", "Harlow Bridge"),
    ):
        c, root, worker = _run(env, text, question, tmp_path / want.replace(" ", "_"))
        assert (c.answer, c.finish_reason) == (want, "final"), (question, c.answer, root.chat_calls[0][-1].content)
        assert not worker.batch_calls and not worker.chat_calls


def test_no_comparison_without_an_offered_choice(env, tmp_path):
    """A lookup that names one project gets the usual reading step."""
    rows = _projects()
    c, root, _ = _run(
        env, _table(rows, filler=100), f"What is the larger of the two figures for {rows[4][0]}?", tmp_path
    )
    assert "read(found)" in root.chat_calls[0][-2].content and "by=options" not in root.chat_calls[0][-2].content
