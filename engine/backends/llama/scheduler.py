"""The decode loop: admission, continuous batching, cancellation, preemption. One thread, one context.

Why this shape: llama.cpp contexts are not thread-safe, so exactly one thread calls :class:`KVOps`; callers hand
requests over through an inbox and wait on events. Every decode step carries one token for each generating
request plus prefill chunks of newly admitted ones, so requests from concurrent callers (several runs) share
steps. Admission policy, each rule tested with a fake KVOps in ``tests/test_backend_scheduler.py``:

* chat requests (root turns) are admitted before worker (batch) requests; a chat that must wait for KV cells
  stops new worker admissions until it fits, so a wide batch cannot starve a root turn;
* worker requests take at most ``n_parallel`` slots, chosen round-robin by ``owner`` (the run): the owner with
  the fewest running requests goes first, ties by who was served least recently;
* a request is admitted only when its worst case (prompt + ``max_tokens``) fits next to the cells already held;
  otherwise it waits. Worker requests never evict chat sessions; when nothing is running and a request still
  cannot fit, idle prefixes are dropped, then (for a chat only) idle sessions, and if that is not enough the
  request fails with an error naming the capacity rule;
* a cancelled request is dropped whether waiting or decoding; its caller was already woken by the token's
  callback, and its sequence and sampler are freed before the next step.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

from engine.backends.base import BackendError, FinishReason, Generation
from engine.backends.llama.config import LlamaConfig, LlamaStats
from engine.backends.llama.kv import KVOps
from engine.backends.llama.model import lcp
from engine.backends.llama.prefix import PrefixPool, PrefixSlot
from engine.backends.llama.requests import CHAT, Request
from engine.backends.llama.sessions import SessionTable
from engine.backends.llama.steps import DecodeSteps
from engine.backends.prefix_store import PrefixStore
from engine.log import get_logger, log

_log = get_logger("backend.llama")
_OK, _FAILED, _WAIT, _WAIT_KV, _WAIT_SLOT = "ok", "failed", "wait", "wait_kv", "wait_slot"


def build_scheduler(
    kv: KVOps,
    config: LlamaConfig,
    stats: LlamaStats,
    *,
    store: PrefixStore | None = None,
    model_fp: str = "",
    settings: dict[str, object] | None = None,
) -> Scheduler:
    """A scheduler over ``kv`` with the sequence layout of ``config``: prefix sequences first
    (``0..n_prefix_seqs-1``), then ``n_parallel`` worker sequences, then ``max_sessions`` session sequences."""
    k, p = config.n_prefix_seqs, config.n_parallel
    prefixes = PrefixPool(
        kv,
        list(range(k)),
        stats,
        store=store,
        model_fp=model_fp,
        settings=settings,
        min_saved_tokens=config.min_saved_prefix_tokens,
    )
    sessions = SessionTable(kv, list(range(k + p, config.n_seq_max)))
    return Scheduler(kv, config, stats, prefixes, sessions, list(range(k, k + p)))


class Scheduler(DecodeSteps):
    def __init__(
        self,
        kv: KVOps,
        config: LlamaConfig,
        stats: LlamaStats,
        prefixes: PrefixPool,
        sessions: SessionTable,
        worker_seqs: list[int],
    ) -> None:
        self.kv = kv
        self.config = config
        self.stats = stats
        self.prefixes = prefixes
        self.sessions = sessions
        self.n_ctx = kv.n_ctx
        self._free_seqs = sorted(worker_seqs, reverse=True)
        self._cv = threading.Condition()
        self._inbox: deque[Request | tuple[str, Any]] = deque()
        self._closed = False
        self.error: str | None = None  # set when the decode thread died
        self._chat_q: deque[Request] = deque()
        self._worker_q: dict[Any, deque[Request]] = {}
        self.active: list[Request] = []
        self._owner_active: Counter[Any] = Counter()
        self._owner_served: dict[Any, int] = {}
        self._admits = itertools.count(1)
        self.admitted: deque[tuple[str, Any, int]] = deque(maxlen=4096)  # (kind, owner, gid), for tests/traces

    # ------------------------------------------------------------------ any thread

    def submit(self, reqs: list[Request]) -> None:
        with self._cv:
            if self.error is not None:
                raise BackendError(f"the llama backend is unhealthy: {self.error}")
            if self._closed:
                raise BackendError("the llama backend is closed")
            self._inbox.extend(reqs)
            self._cv.notify()

    def cancel(self, reqs: Iterable[Request]) -> None:
        """Called from the cancel token's callback: wake the callers now, free the requests at the next step."""
        reqs = list(reqs)
        for r in reqs:
            r.cancelled = True
        with self._cv:
            self._inbox.append(("cancel", reqs))
            self._cv.notify()
        for r in reqs:
            if r.stream is not None:
                r.stream.put(None)
            r.done.set()

    def end_session(self, name: str) -> None:
        with self._cv:
            if not self._closed:
                self._inbox.append(("end_session", name))
                self._cv.notify()

    def barrier(self, timeout: float | None = 30.0) -> bool:
        """Wait until the decode thread has handled everything queued before this call (tests, shutdown)."""
        ev = threading.Event()
        with self._cv:
            if self._closed:
                return True
            self._inbox.append(("barrier", ev))
            self._cv.notify()
        return ev.wait(timeout)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()

    @property
    def busy(self) -> bool:
        return bool(self.active or self._chat_q or self._worker_q)

    # ------------------------------------------------------------------ decode thread

    def run(self) -> None:
        """The decode thread's body: never raises; a crash marks the scheduler unhealthy and fails every caller."""
        try:
            while True:
                with self._cv:
                    while not self._inbox and not self.active and not self._closed:
                        if self._chat_q or self._worker_q:  # queued but not admissible: retry shortly
                            self._cv.wait(0.05)
                            break
                        self._cv.wait()
                    if self._closed:
                        break
                    items = list(self._inbox)
                    self._inbox.clear()
                self.tick(items)
        except BaseException as e:  # noqa: BLE001 - never leave callers waiting on a dead thread
            with self._cv:
                self.error = f"decode thread failed: {e!r}"
            log(_log, "error", "decode thread crashed", error=repr(e), exc_info=True)
            self._fail_all(f"the llama backend is unhealthy: {self.error}")
            return
        self._fail_all("the llama backend was closed")

    def take_inbox(self) -> list[Request | tuple[str, Any]]:
        with self._cv:
            items = list(self._inbox)
            self._inbox.clear()
        return items

    def tick(self, items: list[Request | tuple[str, Any]] | None = None) -> None:
        """Handle new items, admit what fits, run one decode step."""
        barriers: list[threading.Event] = []
        for item in self.take_inbox() if items is None else items:
            if isinstance(item, Request):
                self.stats.requests += 1
                if item.kind == CHAT:
                    self._chat_q.append(item)
                else:
                    self._worker_q.setdefault(item.owner, deque()).append(item)
            elif item[0] == "cancel":
                for r in item[1]:
                    self._drop(r)
            elif item[0] == "end_session":
                self.sessions.end(item[1])
            elif item[0] == "barrier":
                barriers.append(item[1])
        self._admit()
        if self.active:
            self._step()
        for ev in barriers:
            ev.set()

    def _fail_all(self, msg: str) -> None:
        with self._cv:
            self._closed = True
            leftovers = [r for r in self._inbox if isinstance(r, Request)]
            self._inbox.clear()
        queued = list(self._chat_q) + [r for q in self._worker_q.values() for r in q]
        for r in [*self.active, *queued, *leftovers]:
            self._finish(r, "error", error=msg, release=False)
        self.active.clear()
        self._chat_q.clear()
        self._worker_q.clear()

    # ------------------------------------------------------------------ admission

    def used_cells(self) -> int:
        """An upper bound of the KV cells in use: prefixes, running requests' worst case, idle sessions."""
        return self.prefixes.cells() + sum(r.reserved for r in self.active) + self.sessions.idle_cells()

    def _n_workers(self) -> int:
        return sum(1 for r in self.active if r.worker)

    def _need_cells(self, req: Request, pick: tuple[PrefixSlot, int] | None) -> int:
        grow = 0
        if pick is not None:
            grow = len(req.group.shared) - pick[1]
        if req.session is not None:
            sess = self.sessions.get(req.session)
            reuse = lcp(sess.tokens, req.tokens) if sess is not None and sess.seq >= 0 else 0
            return grow + len(req.tokens) - reuse + req.params.max_tokens
        return grow + len(req.tokens) - len(req.group.shared) + req.params.max_tokens

    def _admit(self) -> None:
        kv_blocked = workers_blocked = False
        keep: deque[Request] = deque()
        while self._chat_q:
            req = self._chat_q.popleft()
            if kv_blocked:
                keep.append(req)
                continue
            verdict = self._try_admit(req)
            if verdict in (_WAIT, _WAIT_SLOT, _WAIT_KV):
                keep.append(req)
                kv_blocked = verdict == _WAIT_KV
                workers_blocked = workers_blocked or verdict in (_WAIT_KV, _WAIT_SLOT)
        self._chat_q = keep
        if kv_blocked or workers_blocked:
            return  # root turns first: no worker may take the cells or the slot a waiting chat needs
        while self._worker_q and self._n_workers() < self.config.n_parallel and self._free_seqs:
            progressed = False
            for owner in self._owners_in_order():
                q = self._worker_q[owner]
                verdict = self._try_admit(q[0])
                if verdict in (_OK, _FAILED):
                    q.popleft()
                    if not q:
                        del self._worker_q[owner]
                    progressed = True
                    break
                if verdict in (_WAIT_KV, _WAIT_SLOT):
                    return
            if not progressed:
                return

    def _owners_in_order(self) -> list[Any]:
        if len(self._owner_served) > 4096:  # a long-lived server: forget owners with nothing queued or running
            self._owner_served = {
                o: n for o, n in self._owner_served.items() if o in self._worker_q or o in self._owner_active
            }
        return sorted(self._worker_q, key=lambda o: (self._owner_active[o], self._owner_served.get(o, -1)))

    def _try_admit(self, req: Request) -> str:
        if req.cancelled:
            self._drop(req)
            return _FAILED
        if req.session is not None:
            if not self.sessions.can_start(req.session):
                return _WAIT  # one turn of a session at a time / every session sequence busy
        elif self._n_workers() >= self.config.n_parallel or not self._free_seqs:
            return _WAIT_SLOT
        pick = None
        if req.group.shared:
            pick = self.prefixes.pick(req.group)
            if pick is None:
                return _WAIT  # its prefix is being computed by a joint prefill: copy it once complete
        need = self._need_cells(req, pick)
        if self.used_cells() + need > self.n_ctx:
            if self.active:
                return _WAIT_KV
            if not self._make_room(req, need):
                held = self.sessions.idle_cells()
                self._finish(
                    req,
                    "error",
                    error=(
                        f"the request needs {need} KV cells but only {self.n_ctx - self.used_cells()} of "
                        f"n_ctx={self.n_ctx} are free ({held} held by {len(self.sessions.holders())} idle chat "
                        "session(s)); raise n_ctx (see LlamaConfig.for_workload), lower max_sessions or end "
                        "sessions that are done"
                    ),
                )
                return _FAILED
        try:
            self._prepare(req)
        except BackendError as e:
            self._finish(req, "error", error=str(e))
            return _FAILED
        self.active.append(req)
        if req.worker:
            self._owner_active[req.owner] += 1
        self._owner_served[req.owner] = req.admitted_at
        self.admitted.append((req.kind, req.owner, req.group.gid))
        return _OK

    def _make_room(self, req: Request, need: int) -> bool:
        """Nothing runs and ``req`` does not fit: drop idle prefixes; a chat may also drop idle sessions (LRU)."""
        self.prefixes.drop_idle()
        need = self._need_cells(req, self.prefixes.pick(req.group) if req.group.shared else None)
        while self.used_cells() + need > self.n_ctx:
            if req.kind != CHAT or not self.sessions.evict_one_idle(keep=req.session):
                return False
            self.stats.session_evictions += 1
        return True

    # ------------------------------------------------------------------ preparing a request's sequence

    def _prepare(self, req: Request) -> None:
        """Give ``req`` a sequence holding as much of its prompt as the KV cache already has."""
        if self._joint_ok(req):
            self._prepare_joint(req)
        else:
            self._prepare_own(req)
        req.out = []
        req.out_bytes = bytearray()
        req.text = ""
        req.decoder.reset()
        req.sent_chars = 0
        req.admitted_at = next(self._admits)
        try:
            req.sampler = self.kv.new_sampler(req.params)
        except BackendError:
            self._release(req, keep_session_kv=False)
            raise

    def _prepare_own(self, req: Request) -> None:
        group = req.group
        slot: PrefixSlot | None = None
        pre = 0
        if group.shared:
            slot, pre = self.prefixes.ensure(group)
            if group.pre_cached is None:
                group.pre_cached = pre
        n = len(req.tokens)
        own: list[int] = []
        if req.session is not None:
            evicted = self.sessions.evictions
            sess = self.sessions.acquire(req.session)  # may drop the least recently used idle session
            self.stats.session_evictions += self.sessions.evictions - evicted
            req.seq = sess.seq
            own = sess.tokens
        else:
            req.seq = self._free_seqs.pop()
        c_own = min(lcp(own, req.tokens), n - 1)
        c0 = min(lcp(slot.tokens, req.tokens), n - 1) if slot is not None else 0
        if slot is not None and c0 > c_own:
            self.kv.seq_rm(req.seq, -1, -1)
            self.kv.seq_cp(slot.seq, req.seq, 0, c0)
            reuse = c0
            req.reserved = n - c0 + req.params.max_tokens
            cached = min(c0, pre)  # the request that computed the prefix is charged with it
        else:
            self.kv.seq_rm(req.seq, c_own, -1)
            reuse = c_own
            req.reserved = n + req.params.max_tokens
            cached = c_own
        req.fed = req.tokens[:reuse]
        req.pending = req.tokens[reuse:]
        req.cached = cached
        self.stats.cached_tokens += cached

    def _joint_ok(self, req: Request) -> bool:
        """Whether ``req`` may compute its group's missing shared prefix together with its own prompt.

        Why: computing the prefix in a decode of its own, and then the first request's rest, splits the first
        prompt into different physical batches than a plain single-sequence run (llama-cpp-python's ``Llama``)
        does; llama.cpp's CPU kernels round differently per batch shape, so greedy outputs could differ at
        near-ties. Decoding the first prompt in one pass, its shared tokens tagged with the prefix sequence as
        well, reproduces the single-sequence computation and saves a decode. Not used when the system prompt is
        about to be saved to disk (the saved file must hold exactly the system-prompt cells), nor for sessions.
        """
        group = req.group
        if req.session is not None or not group.shared or group.pre_cached is not None:
            return False
        pick = self.prefixes.pick(group)
        if pick is None or pick[1] >= len(group.shared):
            return False
        return not self.prefixes.saves_to_disk(group) or pick[1] >= group.sys_len

    def _prepare_joint(self, req: Request) -> None:
        group = req.group
        got = self.prefixes.take(group)
        assert got is not None
        slot, c = got
        group.pre_cached = c
        req.seq = self._free_seqs.pop()
        self.kv.seq_rm(req.seq, -1, -1)
        if c > 0:
            self.kv.seq_cp(slot.seq, req.seq, 0, c)
        req.joint_until = len(group.shared)
        req.slot = slot
        slot.joint = req
        req.fed = req.tokens[:c]
        req.pending = req.tokens[c:]
        req.reserved = len(req.tokens) - c + req.params.max_tokens
        req.cached = c
        self.stats.cached_tokens += c

    def _end_joint(self, req: Request) -> None:
        req.joint_until = 0
        if req.slot is not None and req.slot.joint is req:
            req.slot.joint = None

    # ------------------------------------------------------------------ ending requests

    def _drop(self, req: Request) -> None:
        """Drop a cancelled request wherever it is; its caller has already been woken."""
        if req.result is not None:
            return
        if req in self._chat_q:
            self._chat_q.remove(req)
        q = self._worker_q.get(req.owner)
        if q is not None and req in q:
            q.remove(req)
            if not q:
                del self._worker_q[req.owner]
        self.stats.cancelled += 1
        self._finish(req, "error", error="cancelled", keep_session_kv=True)

    def _release(self, req: Request, *, keep_session_kv: bool) -> None:
        """Free what a running request holds: its sampler, its sequence (a session keeps valid KV)."""
        if req.sampler is not None:
            self.kv.free_sampler(req.sampler)
            req.sampler = None
        self._end_joint(req)
        if req in self.active:
            self.active.remove(req)
            if req.worker:
                self._owner_active[req.owner] -= 1
                if self._owner_active[req.owner] <= 0:
                    del self._owner_active[req.owner]
        if req.session is not None:
            sess = self.sessions.get(req.session)
            if sess is not None and sess.busy and sess.seq == req.seq and req.seq >= 0:
                self.sessions.finish_turn(sess, list(req.fed) if keep_session_kv else None)
        elif req.seq >= 0:
            self.kv.seq_rm(req.seq, -1, -1)
            self._free_seqs.append(req.seq)
        req.seq = -1

    def _finish(
        self,
        req: Request,
        reason: FinishReason,
        *,
        text: str | None = None,
        error: str | None = None,
        release: bool = True,
        keep_session_kv: bool | None = None,
        choice_logprobs: tuple[float, ...] | None = None,
    ) -> None:
        if req.result is not None:
            return
        if text is None:
            text = req.text + req.decoder.decode(b"", final=True)
        req.result = Generation(
            text=text,
            finish_reason=reason,
            prompt_tokens=len(req.tokens),
            completion_tokens=len(req.out),
            cached_tokens=req.cached,
            latency_s=max(0.0, time.monotonic() - req.t0),
            error=error,
            choice_logprobs=choice_logprobs,
        )
        if release:
            self._release(req, keep_session_kv=error is None if keep_session_kv is None else keep_session_kv)
        elif req.sampler is not None:
            self.kv.free_sampler(req.sampler)
            req.sampler = None
        if req.stream is not None:
            if error is None and len(text) > req.sent_chars:
                req.stream.put(text[req.sent_chars :])
                req.sent_chars = len(text)
            req.stream.put(None)
        req.done.set()
