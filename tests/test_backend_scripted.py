"""The scripted backend follows the whole Backend protocol (cancel, streaming, owners, grammar, close)."""

from __future__ import annotations

import threading
import time

import pytest

from engine.backends import Backend, BackendError, Message, SamplingParams
from engine.backends.scripted import ScriptedBackend
from engine.cancel import Cancelled, CancelToken


def test_protocol_streaming_owner_and_grammar() -> None:
    b = ScriptedBackend(["one two three"], worker="w")
    assert isinstance(b, Backend) and b.healthy
    pieces: list[str] = []
    g = b.chat([Message("user", "q")], SamplingParams(), owner="run-1", on_text=pieces.append)
    assert "".join(pieces) == g.text == "one two three" and len(pieces) == 3
    assert b.batch("s", ["a"], SamplingParams(grammar='root ::= "w"'), owner="run-2")[0].text == "w"
    assert b.owners == ["run-1", "run-2"]
    with pytest.raises(BackendError, match="grammar"):
        b.batch("s", ["a"], SamplingParams(grammar='start ::= "w"'))


def test_cancel_before_and_during_a_call() -> None:
    b = ScriptedBackend(["x"] * 3, delay_s=5.0)
    tok = CancelToken()
    threading.Timer(0.2, tok.cancel).start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        b.chat([Message("user", "q")], SamplingParams(), cancel=tok)
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(Cancelled):
        b.batch("", ["a"], SamplingParams(), cancel=tok)  # already set: nothing runs
    assert b.batch_calls == []


def test_every_call_after_close_is_a_clear_error() -> None:
    b = ScriptedBackend(["x"])
    b.close()
    b.close()
    assert not b.healthy
    for call in (
        lambda: b.count_tokens("x"),
        lambda: b.chat([Message("user", "q")], SamplingParams()),
        lambda: b.batch("", ["a"], SamplingParams()),
    ):
        with pytest.raises(BackendError, match="closed"):
            call()
