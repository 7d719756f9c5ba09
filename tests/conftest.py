"""Fixtures shared by the suite: the RLM loop's environments and the guard on signal handlers."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from engine.environment import SandboxEnvironment
from tests.rlm_fake_env import FakeEnvironment
from tests.test_rlm_loop import _wasm_available

_GUARDED = (signal.SIGINT, signal.SIGTERM)


@pytest.fixture(autouse=True)
def _no_signal_handler_left_behind() -> Iterator[None]:
    """No test may leave a signal disposition behind: a later test (or the shell's own choice, e.g. SIGINT ignored
    in a background job) would otherwise decide its outcome."""
    before = {s: signal.getsignal(s) for s in _GUARDED}
    yield
    after = {s: signal.getsignal(s) for s in _GUARDED}
    changed = {signal.Signals(s).name: (before[s], after[s]) for s in _GUARDED if before[s] is not after[s]}
    for s in _GUARDED:  # restore first, so one bad test does not fail every later one
        signal.signal(s, before[s])
    assert not changed, f"the test left signal handlers changed: {changed}"


@pytest.fixture()
def sigint_default() -> Iterator[None]:
    """Python's own Ctrl-C handler for the test, whatever the shell handed down (a background job starts with SIGINT
    ignored, and then a simulated Ctrl-C is ignored too); the inherited disposition is restored afterwards."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@pytest.fixture()
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored, as in a job a non-interactive shell started in the background; restored afterwards."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@pytest.fixture(params=["fake", "wasm"])
def env(request):
    """Each loop test runs on the in-process fake REPL and on the real Wasm sandbox."""
    if request.param == "wasm":
        if not _wasm_available():
            pytest.fail("wasm sandbox not available: run `python -m wasm_sandbox.build`")
        return SandboxEnvironment
    return FakeEnvironment
