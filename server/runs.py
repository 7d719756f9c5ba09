"""Runs the server knows about: status, events, result, and live subscribers (SSE, /ui).

Why a store of its own: the engine writes each event once, on its own threads; the HTTP side needs to replay a
run's events to a late subscriber and then follow it live, without gaps or duplicates. Events are appended under a
lock that also registers subscribers, and each subscriber gets them through its event loop's thread-safe queue.
Retention is bounded by count and by age, so a long-lived server does not grow without end.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.cancel import CancelToken

QUEUED, RUNNING, DONE, CANCELLED, FAILED = "queued", "running", "done", "cancelled", "failed"
ACTIVE = (QUEUED, RUNNING)


@dataclass
class _Subscriber:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[dict[str, Any] | None]

    def put(self, item: dict[str, Any] | None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the subscriber's loop is closed: it is gone
            pass


@dataclass
class RunRecord:
    """One RLM request, from admission to its answer."""

    id: str
    model: str
    question: str
    session_id: str | None
    cancel: CancelToken
    max_events: int
    created: float = field(default_factory=time.time)
    status: str = QUEUED
    started: float | None = None
    finished: float | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    events_dropped: int = 0
    result: dict[str, Any] | None = None
    counts: dict[str, int] = field(
        default_factory=lambda: {"root_turns": 0, "cells": 0, "sub_calls": 0, "tokens": 0, "cached_tokens": 0}
    )
    _subs: list[_Subscriber] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- writes (any thread) ---------------------------------------------------------------------------------
    def publish(self, event: str, fields: dict[str, Any]) -> None:
        ev = {"event": event, **fields}
        ev.setdefault("ts", round(time.time(), 4))
        with self._lock:
            self._count(event, fields)
            if len(self.events) < self.max_events:
                ev["seq"] = len(self.events)
                self.events.append(ev)
            else:
                self.events_dropped += 1
                return
            subs = list(self._subs)
        for s in subs:
            s.put(ev)

    def _count(self, event: str, f: dict[str, Any]) -> None:
        c = self.counts
        if event == "root_turn":
            c["root_turns"] += 1
        elif event == "cell":
            c["cells"] += 1
        elif event == "subcall_end":
            c["sub_calls"] += int(f.get("n", 1) or 1)
        if event in ("root_turn", "subcall_end"):
            c["tokens"] += int(f.get("prompt_tokens", 0) or 0) + int(f.get("completion_tokens", 0) or 0)
            c["cached_tokens"] += int(f.get("cached_tokens", 0) or 0)

    def set_running(self) -> None:
        with self._lock:
            if self.status == QUEUED:
                self.status = RUNNING
                self.started = time.time()
        self._status_event()

    def finish(self, status: str, result: dict[str, Any]) -> None:
        with self._lock:
            self.status = status
            self.finished = time.time()
            self.result = result
        self._status_event()
        with self._lock:
            subs, self._subs = list(self._subs), []
        for s in subs:
            s.put(None)

    def _status_event(self) -> None:
        ev = {"event": "status", "status": self.status, "ts": round(time.time(), 4)}
        with self._lock:
            subs = list(self._subs)
        for s in subs:
            s.put(ev)

    # -- reads ---------------------------------------------------------------------------------------------
    def subscribe(self, after: int = -1) -> tuple[list[dict[str, Any]], asyncio.Queue[dict[str, Any] | None] | None]:
        """Events so far (``seq > after``) and a queue for the rest; no queue when the run has ended."""
        loop = asyncio.get_running_loop()
        with self._lock:
            past = [e for e in self.events if e["seq"] > after]
            if self.status not in ACTIVE:
                return past, None
            q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
            self._subs.append(_Subscriber(loop, q))
            return past, q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any] | None]) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s.queue is not q]

    def summary(self) -> dict[str, Any]:
        r = self.result or {}
        end = self.finished or time.time()
        return {
            "id": self.id,
            "object": "outcore.run",
            "model": self.model,
            "status": self.status,
            "created": int(self.created),
            "elapsed_s": round(end - (self.started or self.created), 3),
            "question": self.question[:300],
            "session_id": self.session_id,
            "finish_reason": r.get("finish_reason"),
            "partial": r.get("partial"),
            "counts": dict(self.counts),
            "n_events": len(self.events) + self.events_dropped,
        }

    def detail(self, with_events: bool = True) -> dict[str, Any]:
        d = self.summary()
        r = self.result or {}
        d.update(
            answer=r.get("answer"),
            error=r.get("error"),
            usage=r.get("usage"),
            usage_by_role=r.get("usage_by_role"),
            trace_path=r.get("trace_path"),
            events_dropped=self.events_dropped,
        )
        if with_events:
            with self._lock:
                d["events"] = list(self.events)
        return d


class RunStore:
    """Runs by id, newest last; finished runs beyond ``retention`` or older than ``retention_s`` are dropped."""

    def __init__(self, retention: int, retention_s: float, max_events: int) -> None:
        self.retention = retention
        self.retention_s = retention_s
        self.max_events = max_events
        self._runs: OrderedDict[str, RunRecord] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, run_id: str, model: str, question: str, session_id: str | None, cancel: CancelToken) -> RunRecord:
        rec = RunRecord(run_id, model, question, session_id, cancel, self.max_events)
        with self._lock:
            self._runs[run_id] = rec
        self.prune()
        return rec

    def get(self, run_id: str) -> RunRecord | None:
        with self._lock:
            return self._runs.get(run_id)

    def recent(self, limit: int = 50, status: str | None = None) -> list[RunRecord]:
        with self._lock:
            runs = list(self._runs.values())
        if status:
            runs = [r for r in runs if r.status == status]
        return list(reversed(runs))[:limit]

    def active(self) -> list[RunRecord]:
        with self._lock:
            return [r for r in self._runs.values() if r.status in ACTIVE]

    def prune(self) -> int:
        now = time.time()
        dropped = 0
        with self._lock:
            finished = [r for r in self._runs.values() if r.status not in ACTIVE]
            excess = len(finished) - self.retention
            for r in finished:
                too_old = r.finished is not None and now - r.finished > self.retention_s
                if excess > 0 or too_old:
                    del self._runs[r.id]
                    dropped += 1
                    excess -= 1
        return dropped
