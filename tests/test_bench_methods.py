"""The methods on scripted backends (in addition to the smoke test's real model): prompts, truncation, usage.

``rlm`` / ``rlm-no-sub`` run the real engine in the real Wasm sandbox; only the model is scripted.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench import methods as M
from bench.tasks import get_family
from engine.backends.base import Message
from engine.backends.scripted import ScriptedBackend


def _niah():
    fam = get_family("niah")
    return fam, fam.generate("8k", 0, "methods")


def test_base_reads_the_whole_window_cut_from_the_middle() -> None:
    fam, inst = _niah()
    seen: list[Sequence[Message]] = []

    def root(msgs: Sequence[Message]) -> str:
        seen.append(msgs)
        return "Answer: 42"

    backend = ScriptedBackend(root, n_ctx=2048)
    out = M.BaseMethod(M.Models.of(backend)).run(inst, fam, 60)
    assert out.answer == "Answer: 42" and out.finish_reason == "cut"
    user = seen[0][-1].content
    assert backend.count_tokens(seen[0][0].content + user) <= 2048 - inst.answer_tokens
    # the head and the tail of the context survive, the middle is cut, the question is kept
    assert user.startswith("Text:\n" + inst.context[:200]) and user.endswith(inst.question)
    assert M.CUT_NOTE in user
    before_question = user[: -len(f"\n\nQuestion: {inst.question}")]
    assert before_question.endswith(inst.context[-200:])
    assert out.usage["root"]["calls"] == 1 and out.context_tokens_used and out.context_tokens_used > 1500


def test_base_reads_a_context_that_fits_whole_and_base_4k_reads_4096_tokens() -> None:
    fam, inst = _niah()
    seen: list[str] = []

    def root(msgs: Sequence[Message]) -> str:
        seen.append(msgs[-1].content)
        return "ok"

    backend = ScriptedBackend(root, n_ctx=32768)
    base, small = M.build(["base", "base-4k"], M.Models.of(backend), None, {})
    assert (base.name, small.name) == ("base", "base-4k")
    full = base.run(inst, fam, 60)
    assert full.finish_reason == "direct" and inst.context in seen[0] and M.CUT_NOTE not in seen[0]
    cut = small.run(inst, fam, 60)
    assert cut.finish_reason == "cut" and cut.context_tokens_used is not None
    assert 3000 < cut.context_tokens_used <= M.SMALL_READ and backend.count_tokens(seen[1]) <= M.SMALL_READ


def test_summary_reads_every_window_then_answers_from_notes() -> None:
    fam, inst = _niah()
    calls: list[str] = []

    def root(msgs: Sequence[Message]) -> str:
        text = msgs[-1].content
        calls.append(text)
        if "Notes taken while reading" in text:
            return "Answer: " + ("7" if "NOTE-7" in text else "?")
        return "NOTE-7"

    out = M.SummaryMethod(M.Models.of(ScriptedBackend(root, n_ctx=4096))).run(inst, fam, 60)
    steps = [c for c in calls if c.startswith("Question:") and "Part " in c]
    assert len(steps) >= 3  # 8K cl100k tokens through a 4K window
    assert sum(len(c) for c in steps) > len(inst.context)  # every part read
    assert out.answer == "Answer: 7" and out.usage["root"]["calls"] == len(steps) + 1


def _final_code(msgs: Sequence[Message]) -> str:
    return "```python\nhits = search(r'special magic numbers for \\S+ is: \\d+')\nFINAL(hits[0][1])\n```"


def test_rlm_and_rlm_no_sub_run_the_engine_in_the_sandbox(tmp_path) -> None:
    fam, inst = _niah()
    for sub_calls in (True, False):
        root = ScriptedBackend(_final_code, n_ctx=8192)
        m = M.RLMMethod(M.Models.of(root), sub_calls=sub_calls, trace_dir=tmp_path, limits={"max_root_turns": 2})
        try:
            out = m.run(inst, fam, 60)
        finally:
            m.close()
        assert fam.score(inst, out.answer).value == 1.0, out
        assert out.finish_reason == "final" and out.trace_path and out.usage["root"]["calls"] == 1
        system = root.chat_calls[0][0].content
        assert ("llm_query" in system) is sub_calls


def test_rlm_code_is_the_plain_prompt(tmp_path) -> None:
    """``rlm-code`` runs the engine in plan mode ``code``: the operators are not in its prompt, and no first step
    ran, whatever the root's size."""
    fam, inst = _niah()
    root = ScriptedBackend(_final_code, n_ctx=8192)
    m = M.build(["rlm-code"], M.Models.of(root), tmp_path, {"max_root_turns": 2})[0]
    try:
        out = m.run(inst, fam, 60)
    finally:
        m.close()
    assert m.name == "rlm-code" and fam.score(inst, out.answer).value == 1.0, out
    assert "Operators" not in root.chat_calls[0][0].content and out.usage["root"]["calls"] == 1


def test_sigterm_unwinds_the_bench_so_method_children_are_closed(tmp_path) -> None:
    """A bench killed with SIGTERM runs its ``finally`` (which closes a method's server child) and exits 143."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "bench_like.py"
    script.write_text(
        "import os, signal, subprocess, sys, time\n"
        "from bench.runner import sigterm_exits\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "print(child.pid, flush=True)\n"
        "try:\n"
        "    with sigterm_exits():\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(120)\n"
        "finally:\n"
        "    child.terminate()\n"
        "    child.wait()\n",
        encoding="utf-8",
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 143, done.stderr
    pid = int(done.stdout.split()[0])
    assert not Path(f"/proc/{pid}").exists()  # terminated and reaped by the finally
