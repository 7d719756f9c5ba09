"""Fixtures shared by the RLM loop tests."""

from __future__ import annotations

import pytest

from engine.environment import SandboxEnvironment
from tests.rlm_fake_env import FakeEnvironment
from tests.test_rlm_loop import _wasm_available


@pytest.fixture(params=["fake", "wasm"])
def env(request):
    """Each loop test runs on the in-process fake REPL and on the real Wasm sandbox."""
    if request.param == "wasm":
        if not _wasm_available():
            pytest.fail("wasm sandbox not available: run `python -m wasm_sandbox.build`")
        return SandboxEnvironment
    return FakeEnvironment
