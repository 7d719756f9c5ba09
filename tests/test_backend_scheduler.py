"""The llama scheduler's admission, fairness, sessions, prefixes and cancellation, on a fake KV cache (no model).

The fake keeps real unified-KV bookkeeping (cells tagged with sequence ids, ``seq_cp`` shares cells, a decode
that does not fit returns 1) so capacity rules are checked exactly; its "model" emits token 7 until
``max_tokens``. Most tests drive :meth:`Scheduler.tick` by hand, so every step is deterministic.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from engine.backends.base import BackendError, SamplingParams
from engine.backends.llama.config import LlamaConfig, LlamaStats
from engine.backends.llama.kv import Batch
from engine.backends.llama.requests import BATCH, CHAT, Group, Request
from engine.backends.llama.scheduler import Scheduler, build_scheduler


class FakeSampler:
    def __init__(self) -> None:
        self.freed = False


class FakeKV:
    def __init__(self, n_ctx: int = 256, n_batch: int = 64, eog_after: int | None = None) -> None:
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self._ids = itertools.count()
        self.cells: dict[int, set[int]] = {}  # cell id -> sequences holding it
        self.seq_pos: dict[int, dict[int, int]] = {}  # seq -> pos -> cell id
        self.last_logits: list[bool] = []
        self.samplers: list[FakeSampler] = []
        self.decodes = 0
        self.eog_after = eog_after
        self.fail_decode: Exception | None = None

    def used(self) -> int:
        return len(self.cells)

    def seq_len(self, seq: int) -> int:
        return len(self.seq_pos.get(seq, {}))

    def seq_rm(self, seq: int, p0: int, p1: int) -> None:
        m = self.seq_pos.get(seq, {})
        for pos in [p for p in m if p >= max(p0, 0) and (p1 < 0 or p < p1)]:
            cid = m.pop(pos)
            self.cells[cid].discard(seq)
            if not self.cells[cid]:
                del self.cells[cid]

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        for pos, cid in list(self.seq_pos.get(src, {}).items()):
            if pos >= max(p0, 0) and (p1 < 0 or pos < p1):
                old = self.seq_pos.setdefault(dst, {}).get(pos)
                if old is not None:
                    self.seq_rm(dst, pos, pos + 1)
                self.seq_pos[dst][pos] = cid
                self.cells[cid].add(dst)

    def decode(self, batch: Batch) -> int:
        if self.fail_decode is not None:
            raise self.fail_decode
        assert 0 < len(batch) <= self.n_batch
        if self.used() + len(batch) > self.n_ctx:
            return 1
        for pos, seqs in zip(batch.pos, batch.seqs, strict=True):
            cid = next(self._ids)
            self.cells[cid] = set(seqs)
            for s in seqs:
                assert pos not in self.seq_pos.setdefault(s, {}), f"seq {s} already has pos {pos}"
                self.seq_pos[s][pos] = cid
        self.last_logits = list(batch.logits)
        self.decodes += 1
        return 0

    def new_sampler(self, params: SamplingParams) -> Any:
        if params.grammar == "bad":
            raise BackendError("invalid grammar")
        s = FakeSampler()
        self.samplers.append(s)
        return s

    def free_sampler(self, sampler: Any) -> None:
        assert not sampler.freed, "sampler freed twice"
        sampler.freed = True

    def sample(self, sampler: Any, row: int) -> int:
        assert not sampler.freed, "use after free"
        assert self.last_logits[row], "sampled a row without logits"
        return 7

    def token_logits(self, row: int, tokens: Sequence[int]) -> list[float]:
        assert self.last_logits[row], "scored a row without logits"
        return [float(t) for t in tokens]  # a higher id is more likely

    def is_eog(self, token: int) -> bool:
        return token == 2

    def piece(self, token: int) -> bytes:
        return b"x"

    def save_seq(self, path: Path, seq: int, tokens: Sequence[int]) -> bool:
        return False

    def load_seq(self, path: Path, seq: int, tokens: Sequence[int]) -> bool:
        return False


def make(**kw: Any) -> tuple[Scheduler, FakeKV]:
    n_batch = kw.pop("n_batch", 64)
    cfg = LlamaConfig(model="fake", prefix_cache=False, **{"n_ctx": 256, "n_parallel": 2, **kw})
    kv = FakeKV(cfg.n_ctx, n_batch)
    return build_scheduler(kv, cfg, LlamaStats()), kv


_gids = itertools.count(1)
SYS_A = list(range(1000, 1020))  # 20 "system prompt" tokens
SYS_B = list(range(2000, 2030))


def req(
    n: int = 10,
    *,
    kind: str = BATCH,
    owner: Any = "A",
    session: str | None = None,
    sys: list[int] | None = None,
    max_tokens: int = 4,
    seed: int = 0,
) -> Request:
    prefix = list(sys or [])
    tokens = prefix + [3000 + seed * 100 + i for i in range(n)]
    group = Group(gid=next(_gids), shared=prefix, sys_len=len(prefix))
    return Request(tokens, SamplingParams(max_tokens=max_tokens), group, kind=kind, owner=owner, session=session)


def drain(s: Scheduler, limit: int = 2000) -> None:
    for _ in range(limit):
        s.tick()
        with s._cv:
            queued = bool(s._inbox)
        if not s.busy and not queued:
            return
    raise AssertionError("scheduler did not become idle")


def owners(s: Scheduler, kind: str | None = None) -> list[Any]:
    return [o for k, o, _ in s.admitted if kind is None or k == kind]


def test_chat_is_admitted_before_queued_worker_requests() -> None:
    s, _ = make(n_parallel=2)
    s.submit([req(owner="A", seed=i) for i in range(4)])
    chat = req(kind=CHAT, owner="B", session="root-B")
    s.submit([chat])
    s.tick()
    assert [k for k, _, _ in s.admitted][0] == CHAT  # the root turn first, although it arrived last
    drain(s)
    assert chat.result is not None and chat.result.ok and chat.result.finish_reason == "length"


def test_worker_admission_is_round_robin_by_owner() -> None:
    s, kv = make(n_parallel=2, n_ctx=1024)
    a = [req(owner="A", seed=i) for i in range(6)]
    s.submit(a)
    s.tick()  # A's first two start
    b = [req(owner="B", seed=10 + i) for i in range(2)]
    s.submit(b)
    drain(s)
    assert owners(s) == ["A", "A", "B", "A", "B", "A", "A", "A"]
    assert all(r.result is not None and r.result.ok for r in a + b)
    assert kv.used() == 0 and all(x.freed for x in kv.samplers)  # every sequence and sampler released


def test_worker_never_evicts_an_idle_root_session() -> None:
    s, kv = make(n_ctx=128, n_parallel=2, max_sessions=1)
    root = req(60, kind=CHAT, owner="R", session="root", max_tokens=4)
    s.submit([root])
    drain(s)
    sess = s.sessions.get("root")
    assert sess is not None and sess.seq >= 0 and len(sess.tokens) == 63  # history kept, idle
    # a worker prompt that only fits if the session's cells were taken: it fails clearly, the session stays
    big = req(70, owner="W", max_tokens=8)
    s.submit([big])
    drain(s)
    assert big.result is not None and not big.result.ok
    assert "idle chat session" in (big.result.error or "") and "for_workload" in (big.result.error or "")
    assert s.sessions.get("root") is sess and sess.seq >= 0 and len(sess.tokens) == 63
    assert kv.seq_len(sess.seq) == 63
    # workers that fit next to it run; while one runs, another that does not fit waits (is not failed)
    small = [req(30, owner="W", seed=i, max_tokens=8) for i in range(3)]
    s.submit(small)
    drain(s)
    assert all(r.result is not None and r.result.ok for r in small)
    assert s.stats.max_batch_seqs == 1  # only one fit at a time: the others waited
    assert kv.seq_len(sess.seq) == 63 and s.stats.session_evictions == 0
    # its next turn reuses the whole history
    turn2 = Request(
        root.tokens + [7] * 3 + [9, 9], SamplingParams(max_tokens=4), root.group, kind=CHAT, owner="R", session="root"
    )
    s.submit([turn2])
    drain(s)
    assert turn2.result is not None and turn2.result.cached_tokens == 63


def test_waiting_chat_blocks_new_worker_admissions() -> None:
    s, _ = make(n_ctx=160, n_parallel=3, max_sessions=1)
    w1 = req(80, owner="A", max_tokens=20)
    s.submit([w1])
    s.tick()
    chat = req(40, kind=CHAT, owner="B", session="root-B", max_tokens=20)  # does not fit next to w1
    w2 = req(10, owner="C", max_tokens=4)  # would fit, but the root turn goes first
    s.submit([chat, w2])
    drain(s)
    assert [o for _, o, _ in s.admitted] == ["A", "B", "C"]
    assert chat.result is not None and chat.result.ok and w2.result is not None and w2.result.ok


def test_sessions_are_dropped_only_by_end_or_lru_beyond_max_sessions() -> None:
    s, kv = make(n_ctx=1024, max_sessions=2)
    for i, name in enumerate(["s1", "s2", "s3"]):
        s.submit([req(10, kind=CHAT, owner=name, session=name, seed=i)])
        drain(s)
    assert s.sessions.get("s1") is not None and s.sessions.get("s1").seq < 0  # type: ignore[union-attr]
    assert s.sessions.get("s2").seq >= 0 and s.sessions.get("s3").seq >= 0  # type: ignore[union-attr]
    assert s.stats.session_evictions == 1
    s.end_session("s2")
    drain(s)
    assert s.sessions.get("s2") is None
    held = [x.seq for x in s.sessions.holders()]
    assert len(held) == 1 and kv.used() == kv.seq_len(held[0])


def test_cancel_waiting_and_running_requests() -> None:
    s, kv = make(n_parallel=1, n_ctx=1024)
    running = req(10, owner="A", max_tokens=50)
    queued = req(10, owner="B", max_tokens=5, seed=1)
    other = req(10, owner="C", max_tokens=5, seed=2)
    s.submit([running, queued, other])
    s.tick()
    s.tick()
    assert s.active == [running]
    s.cancel([queued])  # waiting: dropped from the queue
    assert queued.done.is_set()  # the caller is woken at once, before the decode thread acts
    s.cancel([running])  # decoding: dropped at the next step
    s.tick()
    assert running.result is not None and running.result.error == "cancelled"
    assert queued.result is not None and queued.result.error == "cancelled"
    assert running.sampler is None and s.stats.cancelled == 2
    drain(s)
    assert other.result is not None and other.result.ok and other.result.completion_tokens == 5
    assert kv.used() == 0 and all(x.freed for x in kv.samplers)


def test_cancelled_session_turn_keeps_valid_history() -> None:
    s, kv = make(n_ctx=1024, max_sessions=1)
    turn = req(10, kind=CHAT, owner="R", session="root", max_tokens=50)
    s.submit([turn])
    for _ in range(4):
        s.tick()
    s.cancel([turn])
    s.tick()
    sess = s.sessions.get("root")
    assert sess is not None and not sess.busy and sess.seq >= 0
    assert kv.seq_len(sess.seq) == len(sess.tokens) >= 10  # what the session says it holds is really there


def test_root_and_worker_prefixes_coexist() -> None:
    s, _ = make(n_ctx=2048, n_parallel=2, max_sessions=2, n_prefix_seqs=2)
    for i in range(3):
        s.submit([req(5, kind=CHAT, owner=f"r{i}", session=f"root{i}", sys=SYS_A, seed=i)])
        s.submit([req(5, owner=f"r{i}", sys=SYS_B, seed=10 + i), req(6, owner=f"r{i}", sys=SYS_B, seed=20 + i)])
        drain(s)
    # each system prompt computed once (the worker batch's longest common prefix is its system prompt here)
    assert s.stats.prefix_tokens_decoded == len(SYS_A) + len(SYS_B)
    assert s.stats.prefix_evictions == 0
    # with one prefix sequence the two system prompts evict each other
    t, _ = make(n_ctx=2048, n_parallel=2, max_sessions=2, n_prefix_seqs=1)
    for i in range(3):
        t.submit([req(5, kind=CHAT, owner=f"r{i}", session=f"root{i}", sys=SYS_A, seed=i)])
        t.submit([req(5, owner=f"r{i}", sys=SYS_B, seed=10 + i)])
        drain(t)
    assert t.stats.prefix_tokens_decoded > len(SYS_A) + len(SYS_B)


def test_second_session_reuses_the_root_system_prefix() -> None:
    s, _ = make(n_ctx=2048, max_sessions=2)
    first = req(8, kind=CHAT, owner="r1", session="a", sys=SYS_A)
    s.submit([first])
    drain(s)
    decoded = s.stats.prompt_tokens_decoded
    second = req(9, kind=CHAT, owner="r2", session="b", sys=SYS_A, seed=1)
    s.submit([second])
    drain(s)
    assert first.result is not None and first.result.cached_tokens == 0
    assert second.result is not None and second.result.cached_tokens == len(SYS_A)
    assert s.stats.prompt_tokens_decoded - decoded == 9  # only its own tokens were computed


def test_a_scored_request_ends_at_its_first_position_with_each_choice_scored() -> None:
    s, kv = make()
    scored = req(10)
    scored.params = SamplingParams(max_tokens=1, choices=("a", "b", "c"))
    scored.choice_ids = [[5], [9, 3], [8]]  # "b" counts by two tokens: log(e^9 + e^3)
    s.submit([scored])
    drain(s)
    r = scored.result
    assert r is not None and r.text == "b" and r.completion_tokens == 1 and r.choice_logprobs is not None
    assert max(r.choice_logprobs) == r.choice_logprobs[1] and abs(sum(map(math.exp, r.choice_logprobs)) - 1) < 1e-9
    assert kv.decodes == 1 and kv.used() == 0


def test_bad_sampler_fails_one_request_and_frees_its_sequence() -> None:
    s, kv = make()
    bad = req(10)
    bad.params = SamplingParams(max_tokens=4, grammar="bad")
    good = req(10, seed=1)
    s.submit([bad, good])
    drain(s)
    assert bad.result is not None and not bad.result.ok and "grammar" in (bad.result.error or "")
    assert good.result is not None and good.result.ok
    assert kv.used() == 0


def test_decode_thread_crash_fails_callers_and_marks_unhealthy() -> None:
    s, kv = make()
    thread = threading.Thread(target=s.run, daemon=True)
    thread.start()
    r = req(10)
    kv.fail_decode = RuntimeError("injected")
    s.submit([r])
    assert r.done.wait(5)
    thread.join(5)
    assert not thread.is_alive()
    assert r.result is not None and "unhealthy" in (r.result.error or "") and "injected" in (r.result.error or "")
    assert s.error is not None and "injected" in s.error
    with pytest.raises(BackendError, match="unhealthy"):
        s.submit([req(5)])


def test_cancel_wakes_a_threaded_caller_within_a_step() -> None:
    s, kv = make(n_ctx=4096, n_batch=64)
    slow = kv.decode
    decoding = threading.Event()

    def decode(batch: Batch) -> int:
        decoding.set()
        time.sleep(0.02)  # a model step's duration (not ordering threads)
        return slow(batch)

    kv.decode = decode  # type: ignore[method-assign]
    thread = threading.Thread(target=s.run, daemon=True)
    thread.start()
    try:
        r = req(1000, max_tokens=500)  # 16 prefill steps, then 500 generation steps
        s.submit([r])
        assert decoding.wait(10)  # the request is in the decode loop
        t0 = time.monotonic()
        s.cancel([r])
        assert r.done.wait(1)
        assert time.monotonic() - t0 < 0.1
        assert s.barrier(5)
        assert r.result is not None and r.result.error == "cancelled" and kv.used() == 0
        ok = req(10, max_tokens=3, seed=1)
        s.submit([ok])
        assert ok.done.wait(5) and ok.result is not None and ok.result.ok
    finally:
        s.close()
        thread.join(5)


def test_for_workload_sizes_a_pool_that_holds_the_load_without_waiting() -> None:
    cfg = LlamaConfig.for_workload(
        "fake",
        concurrent_runs=3,
        chunk_tokens=100,
        answer_tokens=20,
        root_history_tokens=200,
        prefix_tokens=50,
        n_parallel=4,
        headroom=0.0,
    )
    assert (cfg.n_parallel, cfg.max_sessions) == (4, 3)
    assert cfg.n_ctx >= 50 + 3 * 200 + 4 * (100 + 20) and cfg.n_ctx % 256 == 0
    kv = FakeKV(cfg.n_ctx, 2048)
    s = build_scheduler(kv, cfg.with_options(prefix_cache=False), LlamaStats())
    sys = list(range(5000, 5050))
    s.submit([req(130, kind=CHAT, owner=f"run{i}", session=f"root{i}", seed=i, max_tokens=20) for i in range(3)])
    s.submit([req(50, owner=f"run{i % 3}", sys=sys, seed=10 + i, max_tokens=20) for i in range(4)])
    s.tick()  # the first worker computes the shared prefix along with its prompt; the others copy it next step
    s.tick()
    assert len(s.active) == 7  # every root turn and every worker slot at once: nothing waited for KV
    drain(s)
    assert s.stats.preemptions == 0 and s.stats.max_batch_seqs == 7
    with pytest.raises(ValueError):
        LlamaConfig.for_workload("fake", concurrent_runs=0)
    with pytest.raises(ValueError, match="n_ctx"):
        LlamaConfig(model="fake", n_ctx=0)


def test_chunked_prefill_keeps_generation_going_and_root_prompts_go_first() -> None:
    s, kv = make(n_ctx=8192, n_parallel=3, max_sessions=1, n_batch=512, prefill_chunk=64)
    sizes: list[int] = []
    decode = kv.decode

    def recording(batch: Batch) -> int:
        sizes.append(len(batch))
        return decode(batch)

    kv.decode = recording  # type: ignore[method-assign]
    gen = req(10, owner="A", max_tokens=40)
    s.submit([gen])
    s.tick()
    s.tick()  # now generating
    assert gen.out
    long_worker = req(400, owner="B", seed=1)
    root = req(300, kind=CHAT, owner="C", session="root", seed=2)
    s.submit([long_worker, root])
    sizes.clear()
    s.tick()
    assert sizes == [1 + 64]  # one generation token + at most prefill_chunk prompt tokens
    assert len(root.fed) == 64 and len(long_worker.fed) == 0  # the root turn's prompt first
    drain(s)
    assert all(r.result is not None and r.result.ok for r in (gen, long_worker, root))
    # with nothing generating, a prompt gets the whole n_batch per step
    alone = req(1000, owner="D", seed=3)
    s.submit([alone])
    sizes.clear()
    s.tick()
    assert sizes[0] == 512
