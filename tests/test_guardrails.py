"""The shared budget: limits refuse work before it starts, exactly, under concurrency."""

from __future__ import annotations

import threading

import pytest

from engine.guardrails import Budget, CellCounter, GuardrailError, Limits, split_limits


def test_defaults_and_overrides():
    lim, rest = split_limits({"max_root_turns": 3, "other": 1})
    assert lim.max_root_turns == 3 and rest == {"other": 1}
    assert Limits().max_depth == 1 and Limits().max_output_chars > 0


def test_sub_calls_reserved_exactly_under_threads():
    b = Budget(Limits(max_sub_calls=100, max_sub_calls_per_cell=10_000))
    ok = []
    refused = []

    def worker():
        for _ in range(50):
            try:
                b.take_sub_calls(1, None)
                ok.append(1)
            except GuardrailError as e:
                refused.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ok) == 100 and b.sub_calls == 100 and len(refused) == 300
    assert b.exhausted is not None and b.exhausted.reason == "max_sub_calls"


def test_refusal_reserves_nothing_and_message_is_actionable():
    b = Budget(Limits(max_sub_calls=5))
    b.take_sub_calls(3, None)
    with pytest.raises(GuardrailError) as ei:
        b.take_sub_calls(3, None)
    assert b.sub_calls == 3 and "2 left" in str(ei.value) and "FINAL" in str(ei.value)
    assert not ei.value.fatal and b.exhausted is None  # budget not yet empty: the model can still use 2


def test_per_cell_and_batch_width():
    b = Budget(Limits(max_sub_calls_per_cell=4, max_batch_width=3))
    cell = CellCounter()
    b.take_sub_calls(3, cell, batch=True)
    with pytest.raises(GuardrailError, match="one cell may make at most 4"):
        b.take_sub_calls(2, cell)
    with pytest.raises(GuardrailError, match="at most 3 are allowed") as ei:
        b.take_sub_calls(4, CellCounter(), batch=True)
    assert ei.value.reason == "max_batch_width" and not ei.value.fatal


def test_tokens_per_model_and_depth_usage():
    b = Budget(Limits(max_tokens_per_model=100))
    b.record("m", 0, 60, 30)
    b.check_tokens("m")
    b.record("m", 1, 10, 0)
    with pytest.raises(GuardrailError) as ei:
        b.check_tokens("m")
    assert ei.value.fatal and b.exhausted is ei.value
    b.check_tokens("other-model")  # per model
    assert b.usage_by_depth[0].total_tokens == 90 and b.usage_by_depth[1].calls == 1


def test_wall_clock():
    b = Budget(Limits(max_wall_s=0.0))
    with pytest.raises(GuardrailError) as ei:
        b.check_time()
    assert ei.value.reason == "max_wall_s" and ei.value.fatal


def test_root_turns_per_run_and_total():
    b = Budget(Limits(max_root_turns=2, max_total_root_turns=3))
    b.take_root_turn(0)
    b.take_root_turn(1)
    with pytest.raises(GuardrailError, match="root turn limit"):
        b.take_root_turn(2)
    b.take_root_turn(0)  # a child run has its own per-run count...
    with pytest.raises(GuardrailError, match="whole run"):
        b.take_root_turn(0)  # ...but shares the total
