"""Many runs on one RLM with a real model: shared decode steps, live root sessions, cancel that leaves it serving.

The root replies are scripted (so each run's flow is exact), but every root turn is also decoded by the real model
in its session, so the KV accounting is real: a root session must not be re-prefilled while its run is alive, even
though worker calls of four runs go through the same model in between.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from engine import RLM, CancelToken
from engine.backends import load_backend
from engine.backends.base import Backend, Generation, Message, SamplingParams
from engine.environment import SandboxEnvironment
from tests.test_rlm_loop import _wasm_available

pytestmark = pytest.mark.slow


class ScriptedOverReal:
    """A root whose replies come from a per-run script, while its sessions live in a real backend's KV cache."""

    def __init__(self, real: Backend, scripts: dict[str, list[str]]) -> None:
        self.real = real
        self.scripts = scripts
        self.turns: dict[str, list[Generation]] = {k: [] for k in scripts}
        # not a grammar-capable backend as far as the engine knows: no strategy call consumes a scripted reply
        self.info = dataclasses.replace(real.info, backend="scripted-over-llama")

    def chat(self, messages: Sequence[Message], params: SamplingParams, **kw: Any) -> Generation:
        owner = kw["owner"]
        g = self.real.chat(messages, SamplingParams(max_tokens=1), **kw)  # decodes the history into the session
        self.turns[owner].append(g)
        script = self.scripts[owner]
        text = script[min(len(self.turns[owner]) - 1, len(script) - 1)]
        return Generation(text, "stop", g.prompt_tokens, 1, g.cached_tokens, g.latency_s)

    def count_tokens(self, text: str) -> int:
        return self.real.count_tokens(text)

    def end_session(self, session: str) -> None:
        self.real.end_session(session)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def model():
    if not _wasm_available():
        pytest.fail("wasm sandbox not built")
    b = load_backend("smollm2-135m", n_ctx=8192, n_parallel=4, max_sessions=4)
    yield b
    b.close()


def _script(run: int) -> list[str]:
    prompts = [f"Text: crate {run}-{k} holds {k + run} lanterns. Question: how many lanterns?" for k in range(4)]
    cell = f"answers = [llm_query(p, max_tokens=8) for p in {prompts!r}]\nprint(len(answers))"
    return [f"Ask.\n```python\n{cell}\n```", f"Done.\n```python\nFINAL('run {run}: ' + str(len(answers)))\n```"]


def test_four_concurrent_runs_share_decode_steps_and_keep_root_sessions(model, tmp_path):
    scripts = {f"run-{i}": _script(i) for i in range(4)}
    root = ScriptedOverReal(model, scripts)
    rlm = RLM(root, model, environment=SandboxEnvironment, trace=tmp_path)  # type: ignore[arg-type]
    results: dict[str, Any] = {}

    def go(rid: str) -> None:
        results[rid] = rlm.completion("Every run carries its text in its prompts.", "count", run_id=rid)

    threads = [threading.Thread(target=go, args=(rid,)) for rid in scripts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for i, rid in enumerate(scripts):
        c = results[rid]
        assert c.finish_reason == "final" and c.answer == f"run {i}: 4", (rid, c.answer, c.error)
        assert c.usage_by_role["worker"].calls == 4 and c.usage_by_role["root"].calls == 2
        first, second = root.turns[rid]
        # the second turn reused the first turn's prompt from the live session instead of recomputing it
        assert second.cached_tokens >= first.prompt_tokens - 1, (rid, first, second)
    # worker calls of different runs rode in the same decode steps
    assert model.stats.max_batch_owners >= 2  # type: ignore[attr-defined]
    assert rlm.active_runs == []


def test_cancel_during_real_batched_sub_call_leaves_the_model_serving(model):
    long = ["Text: " + "the lantern was counted again. " * 150 + "\nQuestion: how many?"] * 4
    cell = f"r = llm_query_batched({long!r}, max_tokens=64)\nFINAL(len(r))"
    root = ScriptedOverReal(model, {"run-cancel": [f"```python\n{cell}\n```"], "run-after": _script(9)})
    rlm = RLM(root, model, environment=SandboxEnvironment, trace=False)  # type: ignore[arg-type]
    tok = CancelToken()
    fired: list[float] = []

    def fire() -> None:
        fired.append(time.monotonic())
        tok.cancel()

    timer = threading.Timer(1.0, fire)
    timer.start()
    c = rlm.completion("doc text", "q", run_id="run-cancel", cancel=tok)
    returned = time.monotonic()
    assert c.finish_reason == "cancelled" and c.partial
    assert fired and returned - fired[0] < 1.0
    # the same loaded model serves the next run correctly
    c2 = rlm.completion("doc text", "count", run_id="run-after")
    assert c2.finish_reason == "final" and c2.answer == "run 9: 4"
