"""Cancellation that reaches every layer: the run loop, the model backends and the sandbox.

Why one token per top-level run: a run fans out (root turns, batched worker calls, cells, child runs), and a
server must stop all of it at once when a client goes away. Each layer checks the token at its own waiting points
(every budget draw, every decode step, every host call) and callbacks wake whoever is blocked, so a cancelled run
returns within one decode step instead of at its next turn. ``max_wall_s`` is the same mechanism with a deadline:
the token fires by itself when the deadline passes.

The token is duck-compatible with :class:`threading.Event` (``is_set``, ``wait``), which is all the sandbox (a
leaf that imports nothing of the engine) needs to know about it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CANCELLED = "cancelled"
DEADLINE = "max_wall_s"


class Cancelled(Exception):  # noqa: N818 - reads naturally at the raise site: `raise Cancelled(reason)`
    """Work was stopped by a :class:`CancelToken`; ``reason`` is ``"cancelled"`` or ``"max_wall_s"``."""

    def __init__(self, reason: str = CANCELLED, message: str | None = None) -> None:
        super().__init__(message or ("the run was cancelled" if reason == CANCELLED else f"stopped: {reason}"))
        self.reason = reason


class CancelToken:
    """Set once, by :meth:`cancel` or when ``deadline_s`` seconds have passed; then it stays set.

    Callbacks registered with :meth:`on_cancel` run exactly once, on the thread that cancels (or the deadline
    timer), so they must be quick (notify a condition variable, close a socket).
    """

    def __init__(self, deadline_s: float | None = None) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0
        self._timer: threading.Timer | None = None
        self.deadline: float | None = None
        self._start = time.monotonic()
        if deadline_s is not None:
            self._arm(deadline_s)

    def _arm(self, deadline_s: float) -> None:
        self.deadline = self._start + max(0.0, deadline_s)
        self._timer = threading.Timer(max(0.0, self.deadline - time.monotonic()), self.cancel, args=(DEADLINE,))
        self._timer.daemon = True
        self._timer.start()

    def extend(self, deadline_s: float) -> None:
        """Move the deadline to ``deadline_s`` seconds after the token was made (a run that scaled its budget)."""
        with self._lock:
            if self._event.is_set() or self.deadline is None or self._start + deadline_s <= self.deadline:
                return
            old, self._timer = self._timer, None
            if old is not None:
                old.cancel()
            self._arm(deadline_s)

    @property
    def reason(self) -> str | None:
        return self._reason

    def is_set(self) -> bool:
        if self._event.is_set():
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.cancel(DEADLINE)
            return True
        return False

    @property
    def cancelled(self) -> bool:
        return self.is_set()

    def remaining(self) -> float | None:
        """Seconds until the deadline (None without one); 0 once the token is set."""
        if self.is_set():
            return 0.0
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def cancel(self, reason: str = CANCELLED) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._reason = reason
            self._event.set()
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
            timer, self._timer = self._timer, None
        if timer is not None and reason != DEADLINE:
            timer.cancel()
        for cb in callbacks:
            try:
                cb()
            except Exception:  # noqa: BLE001 - one broken waiter must not keep the others asleep
                pass

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` once when the token is set (at once if it already is); returns a remover."""
        with self._lock:
            if not self._event.is_set():
                key = self._next
                self._next += 1
                self._callbacks[key] = callback

                def remove() -> None:
                    with self._lock:
                        self._callbacks.pop(key, None)

                return remove
        callback()
        return lambda: None

    def raise_if_set(self) -> None:
        if self.is_set():
            raise Cancelled(self._reason or CANCELLED)

    def close(self) -> None:
        """Stop the deadline timer (the run is over) without setting the token."""
        with self._lock:
            timer, self._timer = self._timer, None
            self._callbacks.clear()
        if timer is not None:
            timer.cancel()


def raise_if_cancelled(cancel: CancelToken | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` (a token, or anything with ``is_set()``) is set; None never is."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(getattr(cancel, "reason", None) or CANCELLED)
