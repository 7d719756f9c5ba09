"""A 10M-token prompt (~40 MB): the engine's overhead before the first root call stays under 2 s and Python-side
memory does not grow with the prompt (the sandbox reads it through the mmap)."""

from __future__ import annotations

import resource
import tracemalloc

import pytest

from engine.backends.scripted import ScriptedBackend
from engine.rlm import RLM, SandboxEnvironment
from tests.test_rlm_loop import _wasm_available

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("big") / "big.txt"
    line = "The quick brown fox jumps over the lazy dog near the old mill by the river bank today.\n"
    n = 40_000_000 // len(line)
    with open(p, "w") as fh:
        for i in range(0, n, 10_000):
            fh.write(line * min(10_000, n - i))
    fh_size = p.stat().st_size
    assert fh_size >= 39_000_000
    return p


def test_overhead_and_memory_on_10m_tokens(big_file, tmp_path):
    if not _wasm_available():
        pytest.fail("wasm sandbox not built")
    root = ScriptedBackend(["```python\nprint(len(context))\nFINAL(search('mill', max_hits=2)[1][0])\n```"], name="r")
    rlm = RLM(root, ScriptedBackend(name="w"), environment=SandboxEnvironment, trace=tmp_path)
    tracemalloc.start()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    c = rlm.completion(big_file, "where is the mill?")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert c.finish_reason == "final" and int(c.answer) > 0
    assert c.overhead_s < 2.0, c.overhead_s
    assert peak < 20_000_000, f"Python allocations peaked at {peak:,} bytes for a 40 MB prompt"
    first = root.chat_calls[0][1].content
    assert "40," in first or "39," in first  # the size is stated, the text is not in the conversation
    assert sum(len(m.content) for m in root.chat_calls[0]) < 10_000
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"overhead {c.overhead_s:.2f}s, python peak {peak / 1e6:.1f} MB, max RSS +{(rss1 - rss0) / 1e3:.0f} MB")
