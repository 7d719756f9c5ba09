"""Multi-turn sessions: an engine session (REPL state and history) kept between requests under a client's id.

Why bounded and expiring: each session holds a live sandbox and root KV state. Idle sessions are closed after
``idle_s``; at most ``max_sessions`` exist, and a new one evicts the least recently used idle session (or is
refused with 429 when every session is busy). One request at a time per session: a second concurrent request
gets 409, because two runs interleaving in one REPL would see each other's half-written state.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from server.errors import RATE, APIError, bad_request

if TYPE_CHECKING:
    from engine.rlm import RLM, RLMSession

_log = logging.getLogger("outcore.server")
SESSION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass
class SessionEntry:
    id: str
    model: str
    engine_session: RLMSession | None
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    busy: bool = False
    requests: int = 0


class SessionStore:
    def __init__(self, max_sessions: int, idle_s: float, retry_after_s: int) -> None:
        self.max_sessions = max_sessions
        self.idle_s = idle_s
        self.retry_after_s = retry_after_s
        self._sessions: OrderedDict[str, SessionEntry] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, session_id: str, model: str, rlm: RLM) -> SessionEntry:
        """The session ``session_id`` (created on first use), marked busy; release it with :meth:`release`."""
        if not SESSION_ID.match(session_id):
            raise bad_request("session_id: use 1-128 letters, digits or . _ : -", "session_id")
        evicted: list[SessionEntry] = []
        with self._lock:
            entry = self._sessions.get(session_id)
            if entry is not None:
                if entry.model != model:
                    raise bad_request(
                        f"session {session_id!r} belongs to model {entry.model!r}, not {model!r}", "session_id"
                    )
                if entry.busy:
                    raise APIError(
                        409,
                        f"session {session_id!r} is busy with another request",
                        "conflict_error",
                        param="session_id",
                        code="session_busy",
                    )
            else:
                while len(self._sessions) >= self.max_sessions:
                    idle = next((e for e in self._sessions.values() if not e.busy), None)
                    if idle is None:
                        raise APIError(
                            429,
                            f"all {self.max_sessions} sessions are busy; retry later",
                            RATE,
                            code="too_many_sessions",
                            headers={"Retry-After": str(self.retry_after_s)},
                        )
                    del self._sessions[idle.id]
                    evicted.append(idle)
                entry = SessionEntry(session_id, model, None)
                self._sessions[session_id] = entry
            entry.busy = True
            self._sessions.move_to_end(session_id)
        for e in evicted:
            self._close(e, "evicted")
        if entry.engine_session is None:
            try:
                entry.engine_session = rlm.session()
            except Exception:
                with self._lock:
                    self._sessions.pop(session_id, None)
                raise
        return entry

    def release(self, entry: SessionEntry, completed: bool = False) -> None:
        """Free the session for the next request; ``completed``: a run finished in it (its context is fixed)."""
        with self._lock:
            entry.busy = False
            entry.requests += int(completed)
            entry.last_used = time.monotonic()

    def expire(self) -> int:
        now = time.monotonic()
        with self._lock:
            old = [e for e in self._sessions.values() if not e.busy and now - e.last_used > self.idle_s]
            for e in old:
                del self._sessions[e.id]
        for e in old:
            self._close(e, "idle")
        return len(old)

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def describe(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            return [
                {
                    "id": e.id,
                    "model": e.model,
                    "created": int(e.created),
                    "idle_s": round(now - e.last_used, 1),
                    "busy": e.busy,
                    "requests": e.requests,
                }
                for e in self._sessions.values()
            ]

    def delete(self, session_id: str) -> bool:
        with self._lock:
            e = self._sessions.get(session_id)
            if e is None:
                return False
            if e.busy:
                raise APIError(409, f"session {session_id!r} is busy", "conflict_error", code="session_busy")
            del self._sessions[session_id]
        self._close(e, "deleted")
        return True

    def close_all(self) -> None:
        with self._lock:
            entries = list(self._sessions.values())
            self._sessions.clear()
        for e in entries:
            self._close(e, "shutdown")

    @staticmethod
    def _close(e: SessionEntry, why: str) -> None:
        _log.info("session closed", extra={"fields": {"session": e.id, "why": why, "requests": e.requests}})
        close = getattr(e.engine_session, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001
                _log.warning("closing a session failed", exc_info=True)
