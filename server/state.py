"""What one running server holds: settings, the loaded models, runs, sessions, contexts, metrics and admission.

Why admission lives here: every computing request (RLM run or plain completion) takes one of ``max_running`` slots;
up to ``max_queue`` more wait for one (while they wait, a streaming client gets keep-alive pings); past that the
server answers 429 with ``Retry-After`` at once. Slots are counted on the event loop thread only, so no lock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from server.config import Settings
from server.contexts import ContextStore
from server.errors import RATE, UNAVAILABLE, APIError
from server.metrics import Metrics
from server.registry import Registry
from server.runs import RunStore
from server.sessions import SessionStore

if TYPE_CHECKING:
    from engine.cancel import CancelToken

_log = logging.getLogger("outcore.server")


class Admission:
    def __init__(self, max_running: int, max_queue: int, retry_after_s: int, metrics: Metrics) -> None:
        self.max_running = max_running
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s
        self.metrics = metrics
        self.running = 0
        self.waiting = 0
        self._waiters: deque[asyncio.Future[bool]] = deque()  # FIFO; a slot is handed over, never raced for

    def enter(self) -> None:
        """Reserve a place (running or queued) or refuse with 429 now."""
        if self.running + self.waiting >= self.max_running + self.max_queue:
            raise APIError(
                429,
                f"the server is busy: {self.running} requests running and {self.waiting} queued "
                f"(limit {self.max_running} + {self.max_queue}); retry after {self.retry_after_s} s",
                RATE,
                code="queue_full",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self.waiting += 1
        self.metrics.queued.set(self.waiting)

    async def acquire(self, token: CancelToken) -> bool:
        """Wait for a slot; False (place given up) when ``token`` fires first.

        Why a future per waiter and not a poll: :meth:`release` hands the slot to the oldest waiter directly, and
        the token's own callback wakes a waiter whose client went away, so nothing spins while the queue waits.
        """
        try:
            if self.running < self.max_running and not self._waiters:
                self._take()
                return True
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[bool] = loop.create_future()
            self._waiters.append(fut)

            def give_up() -> None:
                if not fut.done():
                    fut.set_result(False)

            def wake() -> None:  # on the thread that fires the token
                loop.call_soon_threadsafe(give_up)

            unlink = token.on_cancel(wake)
            try:
                granted = await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled() and fut.result():
                    self.release()  # the slot was handed over as the handler was cancelled: pass it on
                raise
            finally:
                unlink()
                if fut in self._waiters:
                    self._waiters.remove(fut)
            if granted and token.is_set():
                self.release()
                return False
            return granted
        finally:
            self.waiting -= 1
            self.metrics.queued.set(self.waiting)

    def _take(self) -> None:
        self.running += 1
        self.metrics.running.set(self.running)

    def leave_queue(self) -> None:
        """Give up a place reserved by :meth:`enter` that never waited (the request failed before queueing)."""
        self.waiting -= 1
        self.metrics.queued.set(self.waiting)

    def release(self) -> None:
        self.running -= 1
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                self._take()
                fut.set_result(True)
                break
        self.metrics.running.set(self.running)


class AppState:
    def __init__(self, settings: Settings, loader: Callable[[], Registry]) -> None:
        s = settings.server
        self.settings = settings
        self.loader = loader
        self.registry: Registry | None = None
        self.load_error: str | None = None
        self.loaded_at: float | None = None
        self.started = time.time()
        self.shutting_down = False
        self.metrics = Metrics()
        self.runs = RunStore(s.run_retention, s.run_retention_s, s.max_events_per_run)
        self.sessions = SessionStore(s.max_sessions, s.session_idle_s, s.retry_after_s)
        self.contexts = ContextStore(s.data_dir, s.max_contexts, s.max_context_chars)
        self.admission = Admission(s.max_running, s.max_queue, s.retry_after_s, self.metrics)
        self.executor = ThreadPoolExecutor(max_workers=s.max_running + 2, thread_name_prefix="outcore-serve")
        self.tokens: set[CancelToken] = set()  # cancel tokens of every computing request (plain ones included)
        self._tokens_lock = threading.Lock()
        self.on_load_failed: Callable[[str], None] | None = None

    # -- loading -------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Build the registry (in a thread; /health answers 503 meanwhile)."""
        try:
            reg = self.loader()
        except BaseException as e:  # noqa: BLE001 - reported, and the server stops
            self.load_error = f"{type(e).__name__}: {e}" if not str(e) else str(e)
            _log.error("loading models failed", extra={"fields": {"error": self.load_error}})
            if self.on_load_failed is not None:
                self.on_load_failed(self.load_error)
            return
        if self.shutting_down:
            reg.close()
            return
        self.registry = reg
        self.loaded_at = time.time()
        self.metrics.models_ready.set(1)
        _log.info(
            "models ready", extra={"fields": {"models": sorted(reg.models), "load_s": self.loaded_at - self.started}}
        )

    def require_ready(self) -> Registry:
        if self.shutting_down:
            raise APIError(503, "the server is shutting down", UNAVAILABLE, code=503)
        if self.registry is None:
            msg = f"loading failed: {self.load_error}" if self.load_error else "Loading model"
            raise APIError(503, msg, UNAVAILABLE, code=503, headers={"Retry-After": "5"})
        return self.registry

    # -- cancellation ----------------------------------------------------------------------------------------
    def track(self, token: CancelToken) -> None:
        with self._tokens_lock:
            self.tokens.add(token)

    def untrack(self, token: CancelToken) -> None:
        with self._tokens_lock:
            self.tokens.discard(token)

    def begin_shutdown(self) -> None:
        """Refuse new work and cancel every in-flight request; each then answers with ``cancelled``."""
        if self.shutting_down:
            return
        self.shutting_down = True
        with self._tokens_lock:
            tokens = list(self.tokens)
        _log.info("shutting down", extra={"fields": {"cancelling": len(tokens)}})
        for t in tokens:
            t.cancel("cancelled")

    def close(self) -> None:
        done = threading.Event()

        def _wait() -> None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            done.set()

        threading.Thread(target=_wait, daemon=True).start()
        if not done.wait(max(self.settings.server.shutdown_grace_s, 1.0)):
            _log.warning("requests still running at shutdown; closing models anyway")
        self.sessions.close_all()
        if self.registry is not None:
            self.registry.close()
        self.contexts.close()
