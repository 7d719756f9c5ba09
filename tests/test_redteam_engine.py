"""Red team of the engine's Python API and of the sandbox, and faults during a run.

API cases: wrong types and bad values through ``RLM(...)`` and ``RLM.completion(...)`` are refused before any model
runs, with an exception that says what is wrong (never an AttributeError from the engine's own state). Sandbox
cases: hostile cells end with a clear error or limit and leave a sandbox that serves the next cell. Faults: a worker
that fails mid-batch, a sandbox out of memory, a trace that cannot be written (read-only, missing, full disk) and a
corrupt prefix-cache file each end the run clearly or are recovered from, and never cost another run its work.
The cases are listed with their results in docs/security.md.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

import engine.rlm as rlm_mod
from engine.backends.base import BackendError
from engine.backends.scripted import ScriptedBackend
from engine.inputs import InvalidPromptError
from engine.rlm import RLM, ContextWindowTooSmallError
from engine.trace import TraceUnavailableError, TraceWriter, read_events
from models.errors import UnknownModelError
from wasm_sandbox import Prompt, Sandbox, SandboxLimits
from wasm_sandbox.build import build

TINY = "smollm2-135m"
FINAL_X = "```python\nFINAL('x')\n```"
POSIX = (
    "bi = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'BuiltinImporter'][0]\n"
    "os = bi.load_module('posix')\n"
)


@pytest.fixture(scope="module", autouse=True)
def built_guest() -> None:
    build()


def _scripted() -> ScriptedBackend:
    return ScriptedBackend(lambda msgs: FINAL_X, worker="w")


# --- the Python API -------------------------------------------------------------------------------------------
API_CASES = [
    ("limit of the wrong type", lambda t: RLM(_scripted(), max_root_turns="x"), ValidationError, "max_root_turns"),
    ("unknown option", lambda t: RLM(_scripted(), bogus=1), TypeError, "bogus"),
    ("NaN temperature", lambda t: RLM(_scripted(), root_temperature=float("nan")), ValidationError, "temperature"),
    ("prompt is an int", lambda t: RLM(_scripted(), trace=False).completion(123, "q"), InvalidPromptError, "int"),
    ("prompt is bytes", lambda t: RLM(_scripted(), trace=False).completion(b"abc", "q"), InvalidPromptError, "bytes"),
    ("prompt is None", lambda t: RLM(_scripted(), trace=False).completion(None, "q"), ValueError, "prompt"),
    ("question is an int", lambda t: RLM(_scripted(), trace=False).completion("abc", 5), InvalidPromptError, "str"),
    (
        "question with NUL",
        lambda t: RLM(_scripted(), trace=False).completion("abc", "a\x00b"),
        InvalidPromptError,
        "NUL",
    ),
    ("empty prompt", lambda t: RLM(_scripted(), trace=False).completion("", "q"), InvalidPromptError, "empty"),
    (
        "prompt with NUL",
        lambda t: RLM(_scripted(), trace=False).completion("a\x00b" * 10, "q"),
        InvalidPromptError,
        "binary",
    ),
    (
        "prompt is a directory",
        lambda t: RLM(_scripted(), trace=False).completion(t, "q"),
        InvalidPromptError,
        "directory",
    ),
    (
        "prompt is /dev/zero",
        lambda t: RLM(_scripted(), trace=False).completion(Path("/dev/zero"), "q"),
        InvalidPromptError,
        "device",
    ),
    (
        "documents with a non-str",
        lambda t: RLM(_scripted(), trace=False).completion(["a", 3], "q"),
        InvalidPromptError,
        "document 1",
    ),
    (
        "empty list of documents",
        lambda t: RLM(_scripted(), trace=False).completion([], "q"),
        InvalidPromptError,
        "empty",
    ),
    (
        "per-call limit out of bounds",
        lambda t: RLM(_scripted(), trace=False).completion("abc", "q", limits={"max_root_turns": 0}),
        ValidationError,
        "max_root_turns",
    ),
    (
        "per-call unknown limit",
        lambda t: RLM(_scripted(), trace=False).completion("abc", "q", limits={"nope": 1}),
        ValidationError,
        "nope",
    ),
    ("unknown model", lambda t: RLM(root="nosuchmodel"), UnknownModelError, "nosuchmodel"),
    ("threads 0", lambda t: RLM(root=TINY, root_options={"n_threads": 0}), ValueError, "n_threads"),
    (
        "n_ctx below the system prompt",
        lambda t: RLM(root=TINY, root_options={"n_ctx": 10}),
        ContextWindowTooSmallError,
        "system prompt",
    ),
    (
        "trace path under a file",
        lambda t: RLM(_scripted(), trace=t / "f.txt" / "traces").completion("abc", "q"),
        TraceUnavailableError,
        "cannot write the trace",
    ),
    (
        "trace under /proc",
        lambda t: RLM(_scripted(), trace="/proc/outcore/x").completion("abc", "q"),
        TraceUnavailableError,
        "cannot write the trace",
    ),
]


@pytest.mark.parametrize(("call", "exc", "words"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_bad_api_input_is_refused_clearly(tmp_path, call, exc, words):
    (tmp_path / "f.txt").write_text("a file where a directory is expected\n")
    with pytest.raises(exc) as info:
        call(tmp_path)
    assert words.lower() in str(info.value).lower()
    assert not isinstance(info.value, AttributeError)


# --- the sandbox ----------------------------------------------------------------------------------------------
SANDBOX_CASES = [
    ("a loop", "while True: pass", lambda r: r.limit == "cpu_time" and r.state_reset),
    ("recursion bomb", "def f(n): return f(n + 1)\nf(0)", lambda r: r.error.startswith("RecursionError")),
    (
        "deeply nested code",
        "x = " + "(" * 5000 + "1" + ")" * 5000,
        lambda r: r.error is not None and (r.state_reset or "nest" in r.error or "Recursion" in r.error),
    ),
    ("deeply nested data", "import json\njson.loads('[' * 10**5 + ']' * 10**5)", lambda r: r.error is not None),
    ("eats memory", "x = []\nwhile True: x.append(' ' * 10**6)", lambda r: r.limit == "memory" and r.state_reset),
    ("forks", POSIX + "os.fork()", lambda r: r.error is not None and "fork" in r.error),
    ("opens a host file", "open('/etc/passwd').read()", lambda r: r.error.startswith("NameError")),
    (
        "opens a host file through WASI",
        POSIX + "os.open('/etc/passwd', os.O_RDONLY)",
        lambda r: r.error is not None and ("FileNotFoundError" in r.error or "PermissionError" in r.error),
    ),
    ("reads the environment", POSIX + "dict(os.environ)", lambda r: r.error is None and r.display == "{}"),
    ("imports a forbidden module", "import subprocess", lambda r: r.error.startswith("ImportError")),
    ("huge line of output", "print('x' * 10**7)", lambda r: r.limit in ("output", "memory") and len(r.stdout) < 6000),
    ("lone surrogate in output", "print('\\ud800')", lambda r: r.error is None or "Unicode" in r.error),
    ("NUL in code", "x = 1\x00", lambda r: r.error is not None),
    ("syntax error", "def (:", lambda r: r.error.startswith("SyntaxError")),
]


@pytest.mark.parametrize(("code", "ok"), [c[1:] for c in SANDBOX_CASES], ids=[c[0] for c in SANDBOX_CASES])
def test_hostile_cell_ends_clearly_and_the_sandbox_serves_the_next(tmp_path, code, ok):
    prompt = Prompt.create("the prompt text\n" * 10, tmp_path / "work")
    try:
        with Sandbox(prompt, limits=SandboxLimits(cpu_seconds=5, memory_bytes=128 << 20, max_output_chars=5000)) as sb:
            r = sb.run_cell(code)
            assert ok(r), (r.error, r.limit, r.display)
            after = sb.run_cell("sum(range(10))")
            assert after.error is None and after.display == "45"
    finally:
        prompt.close()


# --- faults during a run --------------------------------------------------------------------------------------
BATCH_CODE = (
    "```python\nres = llm_query_batched([context[:12] + f' part {i}' for i in range(4)])\n"
    "FINAL('|'.join(map(str, res)))\n```"
)


def _worker_failing_for(word: str, on_call: int):
    seen = {"n": 0}
    lock = threading.Lock()

    def worker(p: str) -> str:
        if word in p:
            with lock:
                seen["n"] += 1
                if seen["n"] >= on_call:
                    raise BackendError("the worker disconnected mid-batch")
        return "ans:" + p[-6:]

    return worker


def _two_runs(rlm: RLM, bad: str, good: str) -> dict:
    out: dict = {}
    start = threading.Barrier(2)

    def go(k: str, ctx: str) -> None:
        start.wait(10)
        out[k] = rlm.completion(ctx, "q")

    threads = [threading.Thread(target=go, args=a) for a in (("bad", bad), ("good", good))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    return out


def test_worker_failing_mid_batch_ends_that_run_only():
    """The third worker prompt of one run raises: that run ends at once with ``backend_error`` and the reason in its
    ``error`` (a dead worker would fail every later call), not in a hang; a second run sharing the RLM (and the
    backend) gets every answer."""
    root = ScriptedBackend(lambda msgs: BATCH_CODE, worker=_worker_failing_for("poison", 3), name="root")
    with RLM(root, None, trace=False, max_root_turns=2) as rlm:
        out = _two_runs(rlm, "poison doc ....", "clean doc .....")
    good, bad = out["good"], out["bad"]
    assert good.finish_reason == "final" and good.answer == "ans:part 0|ans:part 1|ans:part 2|ans:part 3"
    assert bad.finish_reason == "backend_error" and bad.partial and not bad.ok
    assert bad.error is not None and "the worker failed" in bad.error and "disconnected mid-batch" in bad.error


def test_sandbox_out_of_memory_during_a_run_is_reported_and_the_run_goes_on(tmp_path):
    replies = iter([
        "```python\nkeep = 1\nd = {}\ni = 0\nwhile True:\n    d[i] = str(i) * 100\n    i += 1\n```",
        "```python\nFINAL('kept' if 'keep' in globals() else 'reset')\n```",
    ])  # fmt: skip
    root = ScriptedBackend(lambda msgs: next(replies), worker="w")
    with RLM(root, None, trace=tmp_path, max_root_turns=3, cell_memory_bytes=64 << 20, cell_cpu_s=20) as rlm:
        c = rlm.completion("some text\n" * 50, "q")
    assert c.finish_reason == "final" and c.answer == "reset"
    told = root.chat_calls[1][-1].content
    assert "MemoryError" in told and "state was reset" in told.lower() or "state was reset" in told, told


class _FullDiskFile:
    """A trace file on a disk that fills up after ``room`` writes (ENOSPC), as a real full disk answers."""

    def __init__(self, real, room: int) -> None:
        self.real, self.room = real, room

    def write(self, s: str) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= 1
        return self.real.write(s)

    def flush(self) -> None:
        self.real.flush()

    def close(self) -> None:
        self.real.close()


def test_full_disk_for_traces_costs_the_run_nothing(tmp_path, monkeypatch):
    writers: list[TraceWriter] = []

    class FullDiskWriter(TraceWriter):
        def __init__(self, path):
            super().__init__(path)
            self._fh = _FullDiskFile(self._fh, room=2)
            writers.append(self)

    monkeypatch.setattr(rlm_mod, "TraceWriter", FullDiskWriter)
    root = ScriptedBackend(lambda msgs: BATCH_CODE, worker=lambda p: "ans", name="root")
    with RLM(root, None, trace=tmp_path, max_root_turns=2) as rlm:
        c = rlm.completion("clean doc .....", "q")
    assert c.finish_reason == "final" and c.answer == "ans|ans|ans|ans"
    (w,) = writers
    assert w.error is not None and "No space left" in w.error
    assert len(read_events(c.trace_path)) == 2  # every event up to the failure, none torn


def test_trace_dir_unwritable_is_refused_before_the_run_and_leaves_no_run_behind(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    root = _scripted()
    with RLM(root, None, trace=blocker / "traces") as rlm:
        with pytest.raises(TraceUnavailableError):
            rlm.completion("abc", "q", run_id="r1")
        assert rlm.active_runs == [] and root.chat_calls == []
        rlm.trace = tmp_path / "ok"
        assert rlm.completion("abc", "q", run_id="r1").answer == "x"  # the id is free again


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_prefix_cache_file_is_recomputed(tmp_path, damage):
    """A saved system-prompt KV file cut short, overwritten or emptied is not used: the prefix is computed again and
    the answer is the same as from a clean cache."""
    from engine.backends import SamplingParams, load_backend

    system = "You are a careful assistant. Answer in one short sentence, with plain words only. " * 3
    opts = dict(n_ctx=1024, n_parallel=1, max_sessions=1, n_threads=2, prefix_cache_dir=tmp_path,
                min_saved_prefix_tokens=16)  # fmt: skip
    greedy = SamplingParams(max_tokens=12)
    a = load_backend(TINY, **opts)
    try:
        cold = a.batch(system, ["What is 2+2?"], greedy)[0]
        assert a.stats.prefix_saves == 1  # type: ignore[attr-defined]
    finally:
        a.close()
    (f,) = list(tmp_path.glob("*.kvseq"))
    assert len(list(tmp_path.glob("*.sha256"))) == 1
    data = f.read_bytes()
    f.write_bytes({"truncated": data[: len(data) // 2], "garbage": os.urandom(len(data)), "empty": b""}[damage])
    b = load_backend(TINY, **opts)
    try:
        again = b.batch(system, ["What is 2+2?"], greedy)[0]
        assert b.stats.prefix_tokens_restored == 0 and b.stats.prefix_tokens_decoded > 0  # type: ignore[attr-defined]
        assert again.error is None and again.text == cold.text
    finally:
        b.close()
