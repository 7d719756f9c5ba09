"""The host side: one Wasmtime store + component instance per :class:`Sandbox`, limits enforced by Wasmtime.

* CPU time per cell: epoch interruption with a callback. The process's ticker (:mod:`wasm_sandbox.runtime`) bumps
  the engine epoch every ``TICK_S``; at each tick Wasmtime calls the store's callback, which stops the guest once
  the cell has used ``cpu_seconds`` (wall time minus the time spent waiting on models) or once ``cancel`` is set.
  Only the model calls (``llm_query``, ``llm_query_batched``, ``rlm_query`` and the extras declared waiting) are
  excluded from the cell's time; the prompt helpers (search, lines, slices, retrieve, ...) count, and the slow ones
  get the cell's remaining time as their timeout.
* Cancellation: ``cancel`` (anything with ``is_set()``, e.g. ``engine.cancel.CancelToken`` or a
  ``threading.Event``) is checked when every host call starts and when it returns, and at every epoch tick, so a
  cancelled cell stops within ~10 ms of computing or at the return of the host call it waits in. The cell traps,
  the instance is replaced (REPL state reset) and the result says ``limit="cancelled"``. A cell started while
  ``cancel`` is already set does not run. ``Sandbox.cancel`` may be replaced between cells (one token per run).
* Host replies are bounded (``prompt.MAX_REPLY_CHARS`` each), so host memory does not grow with the prompt.
* Memory: ``Store.set_limits(memory_size=...)``; CPython then raises ``MemoryError`` or traps. After a
  ``MemoryError`` the guest collects garbage and allocates ``SandboxLimits.probe_bytes()``: if that fails (the
  cell filled memory with objects its globals still hold), the instance is replaced and the result says
  ``state_reset=True``; otherwise the state is kept with at least that much room for the next cell.
* Output: the guest caps what it captures; the host caps again everything that crosses the boundary, including
  raw WASI stdout/stderr writes that bypass the guest's capture.
* After any trap the instance is poisoned: a fresh one replaces it and the result says ``state_reset=True``.
* WASI: no env vars, no args, one read-only preopen (the prompt's directory, holding only the prompt file), no
  network (Wasmtime's default WASI context grants none), no processes (WASI has none).

Thread safety: each Sandbox serialises its own cells with a lock; different sandboxes run in parallel (Wasmtime
releases the GIL while wasm runs); see :mod:`wasm_sandbox.runtime` for what wasmtime-py shares between threads.
Host functions never raise into wasmtime-py: they answer in band (a status-prefixed string) or trap the guest.

Interrupts: a ``KeyboardInterrupt`` or ``SystemExit`` raised inside a host function (Ctrl-C while ``llm_query``
waits on a model) is not handed to the guest. The host call traps the guest instead, ``run_cell`` replaces the
poisoned instance as after any trap (REPL state is reset) and then re-raises the original exception to its
caller, so the host is consistent and Ctrl-C stops the caller as usual. The guard is installed only while Python's
own ``default_int_handler`` is in place: an application's handler is left alone, and so is an ignored SIGINT (a
job that a non-interactive shell started in the background inherits SIG_IGN; the shell asked for Ctrl-C not to
reach it, so the sandbox does not re-enable it either).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import wasmtime
import wasmtime.component as wc

from . import _abi
from .cell_result import CellResult, cap_head, cap_output, fill_from_guest
from .hostcalls import MODEL_CALLS, Checked, HostFunctions, Raw, build_table, not_provided
from .prompt import MAX_REPLY_CHARS, Prompt, SearchTimeout
from .retrieval import IndexNotReady
from .runtime import Runtime, classify_trap, trap_reason

_LOG = logging.getLogger("outcore.sandbox")

HOST_INSTANCE = "outcore:sandbox/host@0.1.0"
GUEST_PROMPT_DIR = "/prompt"
CLOCK_INSTANCE = "wasi:clocks/monotonic-clock@0.2.9"
WAITING_CALLS = MODEL_CALLS  # the built-in model waits (HostFunctions.waiting adds extras)
_INIT_BUDGET_S = 5.0  # CPU time for instantiating (restoring the guest snapshot), at least


def _log(level: int, msg: str, **fields: Any) -> None:
    _LOG.log(level, msg, extra={"fields": fields})


class CancelLike(Protocol):
    def is_set(self) -> bool: ...


def _refuse_sleep(_ctx: Any, *_args: Any) -> None:
    # a WasmtimeError (not another exception type) so wasmtime-py's process-global exception slot stays unused
    raise wasmtime.WasmtimeError("blocking sleep is not allowed in the sandbox")


@dataclass(frozen=True)
class SandboxLimits:
    cpu_seconds: float = 30.0  # guest CPU (wall) time per cell, excluding time spent waiting in model calls
    memory_bytes: int = 512 << 20  # linear memory of the store
    max_output_chars: int = 20_000  # per stream (stdout, stderr) and for the display repr
    # after a MemoryError the guest must still be able to allocate this much, or the REPL state is reset
    # (None: an eighth of memory_bytes, at most 16 MiB)
    memory_probe_bytes: int | None = None

    def probe_bytes(self) -> int:
        if self.memory_probe_bytes is not None:
            return self.memory_probe_bytes
        return min(16 << 20, self.memory_bytes // 8)


_LIVE: weakref.WeakSet[Sandbox] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _close_all() -> None:
    # Drop every store before the interpreter (and Wasmtime's WASI runtime threads) shut down.
    with _LIVE_LOCK:
        live = list(_LIVE)
    for sb in live:
        sb.close()
    gc.collect()


_ACTIVE: list[Sandbox] = []  # sandboxes running a cell on the main thread, innermost last (see _sigint_guard)


def _on_sigint(_signum: int, _frame: object) -> None:
    target = _ACTIVE[-1] if _ACTIVE else None
    if target is None or target._in_host_fn:
        raise KeyboardInterrupt
    target._sigint = True


def _weak(method: Callable[..., Any]) -> Callable[..., Any]:
    """A callable that does not keep the sandbox alive (the C side holds host functions until the store dies)."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> Any:
        m = ref()
        if m is None:
            raise _abi.Trap("the sandbox was garbage-collected")
        return m(*args)

    return call


class Sandbox:
    """A persistent Python REPL in Wasmtime with read-only access to ``prompt``. See the package docstring.

    ``cache_root``: outcore's cache directory holding ``sandbox/`` (default ``$OUTCORE_CACHE_DIR`` or the user
    cache dir); the engine passes its own so every layer agrees on one cache.
    """

    def __init__(
        self,
        prompt: Prompt,
        host: HostFunctions | None = None,
        limits: SandboxLimits | None = None,
        cancel: CancelLike | None = None,
        *,
        cache_root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.prompt = prompt
        self.host = host or HostFunctions()
        self.limits = limits or SandboxLimits()
        self.cancel = cancel
        self._rt = Runtime.get(cache_root)
        self._lock = threading.Lock()
        self._closed = False
        self._in_cell = False
        self._phase_start = 0.0
        self._budget = 0.0
        self._host_wait = 0.0
        self._stop: str | None = None  # why the epoch callback / a host call is stopping the guest
        self._interrupt: BaseException | None = None
        self._sigint = False  # Ctrl-C arrived while the guest ran (main thread only, see _sigint_guard)
        self._in_host_fn = False  # a host function (model call, helper) is running: Ctrl-C may raise there
        self._cpu_spent = False  # a host helper timed out: the cell has no CPU time left
        self._spent_why = ""  # ... and what it said
        self._raw_out: list[str] = []
        self._raw_err: list[str] = []
        self._raw_n = 0
        self._raw_truncated = False
        self._meta_json = json.dumps(prompt.meta_dict())
        self._cfg = self._config()
        self._waiting = self.host.waiting_calls()
        self._table = build_table(prompt, self.host, self._remaining, self._meta_json)
        self._instantiate()
        with _LIVE_LOCK:
            _LIVE.add(self)

    # --- instance lifecycle ------------------------------------------------------------------------------
    def _config(self) -> str:
        lim = self.limits
        return json.dumps(
            {
                "max_output_chars": lim.max_output_chars,
                "extras": sorted(self.host.extra),
                "memory_probe_bytes": lim.probe_bytes(),
            }
        )

    def _begin(self, budget: float, in_cell: bool) -> None:
        self._phase_start, self._budget, self._host_wait, self._in_cell = time.monotonic(), budget, 0.0, in_cell
        self._stop, self._interrupt, self._cpu_spent, self._spent_why = None, None, False, ""

    def _instantiate(self) -> None:
        store = wasmtime.Store(self._rt.engine)
        wasi = wasmtime.WasiConfig()
        wasi.preopen_dir(str(self.prompt.dir), GUEST_PROMPT_DIR, fs_mutable=False)
        wasi.stdout_custom = _weak(self._on_stdout)
        wasi.stderr_custom = _weak(self._on_stderr)
        store.set_wasi(wasi)
        store.set_limits(memory_size=self.limits.memory_bytes)
        self._begin(max(self.limits.cpu_seconds, _INIT_BUDGET_S), in_cell=False)
        _abi.set_epoch_callback(store, _weak(self._on_epoch))
        store.set_epoch_deadline(1)
        linker = wc.Linker(self._rt.engine)
        linker.add_wasip2()
        linker.allow_shadowing = True
        with linker.root() as root:
            # Blocking sleeps happen in the host where epoch interruption cannot reach them: trap instead.
            # (The guest's `time.sleep` is a CPU-limited busy wait, so only code that digs past it lands here.)
            with root.add_instance(CLOCK_INSTANCE) as clock:
                _abi.add_func(clock, "now", time.monotonic_ns, result="u64")
                _abi.add_func(clock, "resolution", lambda: 1, result="u64")
                clock.add_func("subscribe-duration", _refuse_sleep)
                clock.add_func("subscribe-instant", _refuse_sleep)
            with root.add_instance(HOST_INSTANCE) as h:
                _abi.add_func(h, "call", _weak(self._host_call))
                _abi.add_func(h, "slice", _weak(self._host_slice))
        self._rt.enter()
        try:
            instance = linker.instantiate(store, self._rt.component)
        finally:
            self._rt.leave()
        run = instance.get_func(store, "run-cell")
        if run is None:
            raise RuntimeError("guest component has no run-cell export")
        self._store, self._linker, self._instance, self._run = store, linker, instance, run

    def _on_raw(self, buf: list[str], data: bytes) -> None:
        room = self.limits.max_output_chars - self._raw_n
        if room > 0:
            text = data[:room].decode("utf-8", errors="replace")
            buf.append(text)
            self._raw_n += len(text)
        if len(data) > max(room, 0):
            self._raw_truncated = True

    def _on_stdout(self, data: bytes) -> None:
        self._on_raw(self._raw_out, data)

    def _on_stderr(self, data: bytes) -> None:
        self._on_raw(self._raw_err, data)

    # --- called from inside wasm, on the cell's thread ---------------------------------------------------
    def _remaining(self) -> float:
        """Guest CPU time the current cell has left (model waits excluded)."""
        return self._budget - (time.monotonic() - self._phase_start - self._host_wait)

    def _cancelled(self) -> _abi.Trap:
        self._stop = "cancelled"
        return _abi.Trap("the cell was cancelled")

    def _on_epoch(self) -> int:
        """Each epoch tick: 1 more tick for the guest, or a trap (cancelled, CPU time spent)."""
        if self._stop is None:
            c = self.cancel
            if self._sigint and self._in_cell:
                self._stop, self._interrupt = "interrupted", self._interrupt or KeyboardInterrupt()
            elif self._in_cell and c is not None and c.is_set():
                self._stop = "cancelled"
            elif self._cpu_spent or self._remaining() <= 0:
                self._stop = "cpu_time"
            else:
                return 1
        raise _abi.Trap(_STOPS.get(self._stop, "the CPU time limit was reached"))

    def _host_call(self, name: str, args: str) -> str:
        """``call(name, args)``: ``"s" + text`` (a str result), ``"0" + JSON`` (any other) or ``"1" + error``."""
        c = self.cancel
        if c is not None and c.is_set():
            raise self._cancelled()
        if self._interrupt is not None or self._sigint:
            self._interrupt = self._interrupt or KeyboardInterrupt()
            raise _abi.Trap("the cell was interrupted on the host")
        fn = self._table.get(name)
        if fn is None:
            return "1" + not_provided(name, self._table)
        waiting = name in self._waiting
        t0 = time.monotonic() if waiting else 0.0
        try:
            self._in_host_fn = True
            out = fn(json.loads(args))
            self._in_host_fn = False
            kind = type(out)
            if kind is str:
                reply = "s" + out
            elif kind is Raw:
                reply = "0" + out
            elif kind is Checked:
                reply = _encode_checked(out)
            else:
                reply = "0" + json.dumps(out, ensure_ascii=False)
        except (KeyboardInterrupt, SystemExit) as e:
            # Not the guest's to catch: trap the guest; run_cell resets the instance and re-raises this.
            self._interrupt = e
            raise _abi.Trap(f"the cell was interrupted on the host ({type(e).__name__})") from None
        except (SearchTimeout, IndexNotReady) as e:
            # It ran for the cell's remaining time: the cell ends as a CPU limit now. Answering in band and waiting
            # for the next tick raced with a cell that caught the error and returned first (seen in CI).
            self._cpu_spent = True
            what = "the search exceeded the cell's CPU time limit" if isinstance(e, SearchTimeout) else str(e)
            self._spent_why = f"TimeoutError: {what}"
            self._stop = "cpu_time"
            raise _abi.Trap(self._spent_why) from None
        except BaseException as e:  # noqa: BLE001 - answered in band; the guest raises HostError
            reply = "1" + cap_head(f"{type(e).__name__}: {e}", 2000)
        finally:
            self._in_host_fn = False
            if waiting:
                self._host_wait += time.monotonic() - t0
        if c is not None and c.is_set():  # cancelled while it ran: its answer (or its error) is not handed back
            raise self._cancelled()
        return reply

    def _host_slice(self, start: int, end: int) -> str:
        # at most MAX_REPLY_CHARS per call: the guest fetches longer slices piece by piece
        c = self.cancel
        if c is not None and c.is_set():
            raise self._cancelled()
        try:
            return self.prompt.slice(start, min(end, start + MAX_REPLY_CHARS))
        except Exception:  # noqa: BLE001
            return ""

    # --- public API -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _sigint_guard(self) -> Iterator[None]:
        """On the main thread, Ctrl-C while the guest runs would otherwise raise inside a ctypes callback (the
        10 ms epoch check), where Python can only print it. Instead the innermost running sandbox (a nested one
        runs inside an ``rlm_query``) notes it there (its next check stops the cell), or it is raised inside a
        running host function (so a model wait is interrupted); ``run_cell`` then raises it to its caller."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        installed = False
        if not _ACTIVE:
            if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
                yield  # the application handles SIGINT itself: leave it alone
                return
            signal.signal(signal.SIGINT, _on_sigint)
            installed = True
        self._sigint = False
        _ACTIVE.append(self)
        try:
            yield
        finally:
            _ACTIVE.remove(self)
            if installed:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            pending, self._sigint = self._sigint, False
        if pending:
            raise KeyboardInterrupt

    def run_cell(self, code: str) -> CellResult:
        """Run ``code`` in the persistent namespace; never raises for anything the code does."""
        with self._lock, self._sigint_guard():
            if self._closed:
                raise RuntimeError("sandbox is closed")
            t0 = time.monotonic()
            res = CellResult()
            c = self.cancel
            if c is not None and c.is_set():
                res.limit, res.error = "cancelled", f"Cancelled: {self._cancel_text()}; the cell did not run"
                return res
            self._raw_out, self._raw_err, self._raw_n, self._raw_truncated = [], [], 0, False
            self._rt.enter()
            try:
                self._begin(self.limits.cpu_seconds, in_cell=True)
                self._store.set_epoch_deadline(1)
                raw = self._run(self._store, code, self._cfg)
                try:
                    self._run.post_return(self._store)
                except wasmtime.WasmtimeError:
                    pass
                data = json.loads(raw)
                exhausted = fill_from_guest(data, res, self.limits.memory_bytes)
                self._raw_truncated = self._raw_truncated or bool(data.get("output_truncated"))
                if exhausted:
                    self._reset(res, "memory stayed exhausted after the MemoryError")
            except Exception as e:  # noqa: BLE001 - a trap: the instance is poisoned
                self._interrupt = self._interrupt or _abi.take_interrupt()
                self._trapped(e, res)
            finally:
                self._in_cell = False
                self._rt.leave()
            if self._interrupt is not None:
                interrupt, self._interrupt = self._interrupt, None
                _log(logging.INFO, "cell interrupted on the host; instance replaced", exc=type(interrupt).__name__)
                raise interrupt
            cap_output(res, self.limits.max_output_chars, self._raw_out, self._raw_err, self._raw_truncated)
            res.duration_s = time.monotonic() - t0
            return res

    def _cancel_text(self) -> str:
        reason = getattr(self.cancel, "reason", None)
        return "the cell was cancelled" + (f" ({reason})" if isinstance(reason, str) and reason else "")

    def _reset(self, res: CellResult, why: str) -> None:
        """Replace the instance after a cell that left memory full: the next cell starts from a fresh REPL."""
        res.state_reset = True
        res.error = f"{res.error}; {why}: the REPL state was reset (all variables are gone)"
        _log(logging.INFO, "guest memory stayed exhausted; replacing the instance")
        try:
            self._instantiate()
        except Exception as e:  # noqa: BLE001
            self._closed = True
            res.error += f"; a fresh instance could not be created: {e}"

    def _trapped(self, e: Exception, res: CellResult) -> None:
        msg = str(e)
        kind = self._stop or classify_trap(msg)
        res.limit = kind
        first = (self._spent_why if kind == "cpu_time" else "") or trap_reason(msg) or type(e).__name__
        reset = "the REPL state was reset (all variables are gone)"
        if kind == "cancelled":
            res.error = f"Cancelled: {self._cancel_text()}; {reset}"
        else:
            what = {
                "cpu_time": f"CPU time limit ({self.limits.cpu_seconds:g} s per cell) exceeded",
                "memory": f"memory limit ({self.limits.memory_bytes >> 20} MiB) or guest memory fault",
            }.get(kind or "", "the sandbox trapped")
            res.error = f"SandboxLimitError: {what}; {reset} [{first}]"
        res.state_reset = True
        _log(logging.INFO, "sandbox trapped; replacing the instance", limit=kind, trap=first)
        interrupt = self._interrupt
        try:
            self._instantiate()
        except Exception as e2:  # noqa: BLE001
            self._closed = True
            res.error += f"; a fresh instance could not be created: {e2}"
        self._interrupt = interrupt

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._run = None  # type: ignore[assignment]
            self._instance = None  # type: ignore[assignment]
            self._linker = None  # type: ignore[assignment]
            self._store = None  # type: ignore[assignment]

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_STOPS = {"cancelled": "the cell was cancelled", "interrupted": "the cell was interrupted on the host (Ctrl-C)"}


def _encode_checked(out: Checked) -> str:
    try:
        text = json.dumps(out.value, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        return "1" + f"TypeError: host call {out.name} returned a value that is not JSON ({e})"
    if len(text) > MAX_REPLY_CHARS:
        return "1" + f"ValueError: host call {out.name} returned {len(text):,} characters (at most {MAX_REPLY_CHARS:,})"
    return "0" + text
