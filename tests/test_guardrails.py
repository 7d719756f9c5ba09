"""The shared budget: limits refuse work before it starts, exactly, under concurrency."""

from __future__ import annotations

import threading
import time

import pytest
from pydantic import ValidationError

from engine.cancel import Cancelled, CancelToken
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


def test_tokens_per_model_role_and_depth_usage():
    b = Budget(Limits(max_tokens_per_model=1000))
    b.record("m", "root", 0, 600, 300)
    b.check_tokens("m")
    b.record("m", "worker", 1, 100, 0)
    with pytest.raises(GuardrailError) as ei:
        b.check_tokens("m")
    assert ei.value.fatal and b.exhausted is ei.value
    b.check_tokens("other-model")  # per model
    assert b.usage_by_depth[0].total_tokens == 900 and b.usage_by_depth[1].calls == 1
    # one model in two roles: the roles stay apart
    assert b.usage_by_role["root"].total_tokens == 900 and b.usage_by_role["worker"].total_tokens == 100
    assert b.max_depth_reached == 1


def test_wall_clock():
    b = Budget(Limits(max_wall_s=0.01))
    time.sleep(0.02)
    with pytest.raises(GuardrailError) as ei:
        b.check_time()
    assert ei.value.reason == "max_wall_s" and ei.value.fatal


def test_cancel_token_refuses_every_draw():
    tok = CancelToken()
    b = Budget(Limits(), cancel=tok)
    b.take_sub_calls(1, None)
    tok.cancel()
    with pytest.raises(GuardrailError) as ei:
        b.take_sub_calls(1, None)
    assert ei.value.reason == "cancelled" and ei.value.fatal and b.stop_reason() == "cancelled"
    with pytest.raises(GuardrailError):
        b.take_root_turn(0)


def test_cancel_token_deadline_and_callbacks():
    tok = CancelToken(deadline_s=0.05)
    fired = []
    tok.on_cancel(lambda: fired.append(tok.reason))
    assert not tok.is_set() and tok.wait(1.0)
    assert tok.reason == "max_wall_s" and fired == ["max_wall_s"]
    tok.on_cancel(lambda: fired.append("late"))  # registered after: runs at once
    assert fired[-1] == "late"
    with pytest.raises(Cancelled):
        tok.raise_if_set()
    t2 = CancelToken(deadline_s=10)
    t2.cancel()
    assert t2.reason == "cancelled" and t2.remaining() == 0.0


def test_cancel_token_deadline_extended():
    """A run that scales its wall clock moves the deadline later (never earlier), and the timer follows it."""
    tok = CancelToken(deadline_s=0.2)
    tok.extend(0.1)  # earlier: ignored
    tok.extend(0.6)
    assert not tok.wait(0.4) and not tok.is_set()
    assert tok.wait(1.0) and tok.reason == "max_wall_s"
    tok.extend(10)  # after it fired: stays set
    assert tok.is_set()


@pytest.mark.parametrize(
    "bad",
    [
        {"max_root_turns": -1},
        {"max_root_turns": 0},
        {"max_sub_calls": -5},
        {"max_wall_s": 0},
        {"cell_cpu_s": -1},
        {"max_depth": 100},
        {"max_batch_width": 10**9},
        {"root_temperature": 9},
        {"max_root_turns": "many"},
    ],
)
def test_absurd_limits_refused(bad):
    with pytest.raises(ValidationError):
        Limits(**bad)


def test_root_turns_per_run_and_total():
    b = Budget(Limits(max_root_turns=2, max_total_root_turns=3))
    b.take_root_turn(0)
    b.take_root_turn(1)
    with pytest.raises(GuardrailError, match="root turn limit"):
        b.take_root_turn(2)
    b.take_root_turn(0)  # a child run has its own per-run count...
    with pytest.raises(GuardrailError, match="whole run"):
        b.take_root_turn(0)  # ...but shares the total
