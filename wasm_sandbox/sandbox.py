"""The host side: one Wasmtime store + component instance per :class:`Sandbox`, limits enforced by Wasmtime.

* CPU time per cell: epoch interruption. One ticker thread per process bumps the engine epoch every
  ``TICK_S``; each cell gets a deadline of ``cpu_seconds`` worth of ticks. Only the model calls (``llm_query``,
  ``llm_query_batched``, ``rlm_query``: a model may take minutes) are excluded from the cell's time; the host
  helpers (search, lines, slices, ...) count, and a regex search gets the cell's remaining time as its timeout.
  Every host call re-arms the deadline from the clock when it returns (deadline 0 once the time is spent, so the
  guest traps as a CPU limit at its next check).
* Host replies are bounded (``prompt.MAX_REPLY_CHARS`` each), so host memory does not grow with the prompt.
* Memory: ``Store.set_limits(memory_size=...)``; CPython then raises ``MemoryError`` (state survives) or traps.
* Output: the guest caps what it captures; the host caps again everything that crosses the boundary, including
  raw WASI stdout/stderr writes that bypass the guest's capture.
* After any trap the instance is poisoned: a fresh one replaces it and the result says ``state_reset=True``.
* WASI: no env vars, no args, one read-only preopen (the prompt's directory, holding only the prompt file), no
  network (Wasmtime's default WASI context grants none), no processes (WASI has none).

Thread safety: each Sandbox serialises its own cells with a lock; different sandboxes run in parallel (Wasmtime
releases the GIL while wasm runs). Host functions never raise into wasmtime-py (its exception hand-off is a
process global), they return a status-prefixed string instead.

Interrupts: a ``KeyboardInterrupt`` or ``SystemExit`` raised inside a host function (Ctrl-C while ``llm_query``
waits on a model) is not handed to the guest. The host call traps the guest instead (a ``WasmtimeError``, the
same route as a refused sleep), ``run_cell`` replaces the poisoned instance as after any trap (REPL state is
reset) and then re-raises the original exception to its caller, so the host is consistent and Ctrl-C stops the
caller as usual.
"""

from __future__ import annotations

import atexit
import gc
import json
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import wasmtime
import wasmtime.component as wc
from wasmtime import _ffi as ffi

from engine.log import get_logger, log

from .artifacts import SandboxNotBuiltError, artifact_paths, compile_component, make_config
from .prompt import MAX_REPLY_CHARS, Prompt, SearchTimeout

_LOG = get_logger("wasm_sandbox")

TICK_S = 0.01
HOST_INSTANCE = "outcore:sandbox/host@0.1.0"
GUEST_PROMPT_DIR = "/prompt"
CLOCK_INSTANCE = "wasi:clocks/monotonic-clock@0.2.9"
# Host calls whose duration is model waiting time, not guest CPU time (excluded from the cell's limit).
WAITING_CALLS = frozenset({"llm_query", "llm_query_batched", "rlm_query"})
# Per-field caps on what a cell result carries besides stdout/stderr/display (F2: nothing crosses uncapped).
VAR_NAME_CHARS, VAR_TYPE_CHARS, VAR_DESC_CHARS = 100, 100, 200


def _clock_now(_ctx: Any) -> int:
    return time.monotonic_ns()


def _clock_resolution(_ctx: Any) -> int:
    return 1


def _refuse_sleep(_ctx: Any, *_args: Any) -> None:
    # a WasmtimeError (not another exception type) so wasmtime-py's process-global exception slot stays unused
    raise wasmtime.WasmtimeError("blocking sleep is not allowed in the sandbox")


@dataclass(frozen=True)
class SandboxLimits:
    cpu_seconds: float = 30.0  # guest CPU (wall) time per cell, excluding time spent waiting in host calls
    memory_bytes: int = 512 << 20  # linear memory of the store
    max_output_chars: int = 20_000  # per stream (stdout, stderr) and for the display repr


def _unset(name: str) -> Callable[..., Any]:
    def fn(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError(f"{name} is not available in this sandbox")

    return fn


@dataclass
class HostFunctions:
    """Callables the guest's ``llm_query`` & co. forward to (called on the thread running the cell)."""

    llm_query: Callable[[str, dict[str, Any]], str] = field(default_factory=lambda: _unset("llm_query"))
    llm_query_batched: Callable[[list[str], dict[str, Any]], list[str]] = field(
        default_factory=lambda: _unset("llm_query_batched")
    )
    rlm_query: Callable[[str, dict[str, Any]], str] = field(default_factory=lambda: _unset("rlm_query"))


@dataclass
class CellResult:
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    traceback: str | None = None
    display: str | None = None
    variables: list[tuple[str, str, str]] = field(default_factory=list)
    final: str | None = None
    limit: str | None = None  # None | "cpu_time" | "memory" | "output"
    state_reset: bool = False
    duration_s: float = 0.0


# --- process-wide engine, component and epoch ticker -------------------------------------------------------
class _Runtime:
    _lock = threading.Lock()
    _instance: _Runtime | None = None

    def __init__(self) -> None:
        arts = artifact_paths()
        self.engine = wasmtime.Engine(make_config())
        if not arts.compiled.exists():
            if not arts.guest_wasm.exists():
                raise SandboxNotBuiltError(
                    f"the sandbox guest is not built (expected {arts.guest_wasm}); "
                    "run `python -m wasm_sandbox.build` once (about 15-25 s)"
                )
            log(_LOG, "warning", "compiling the sandbox component (not cached yet)", path=str(arts.compiled))
            compile_component(arts.guest_wasm, arts.compiled)
        self.component = wc.Component.deserialize_file(self.engine, str(arts.compiled))
        self.path = arts.compiled
        self._busy = threading.Event()
        self._count_lock = threading.Lock()
        self._running = 0
        self._ticker = threading.Thread(target=self._tick, name="outcore-epoch-ticker", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        # Ticks only while some guest code may be running, so an idle process does not wake 100 times a second.
        while True:
            self._busy.wait()
            time.sleep(TICK_S)
            self.engine.increment_epoch()

    def enter(self) -> None:
        with self._count_lock:
            self._running += 1
            self._busy.set()

    def leave(self) -> None:
        with self._count_lock:
            self._running -= 1
            if self._running <= 0:
                self._running = 0
                self._busy.clear()

    @classmethod
    def get(cls) -> _Runtime:
        with cls._lock:
            if cls._instance is None or not cls._instance.path.exists():
                cls._instance = _Runtime()
            return cls._instance


_LIVE: weakref.WeakSet[Sandbox] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # Drop every store before the interpreter (and Wasmtime's WASI runtime threads) shut down.
    for sb in list(_LIVE):
        sb.close()
    gc.collect()


def _ticks(seconds: float) -> int:
    return max(1, math.ceil(seconds / TICK_S)) + 1


def _trap_reason(msg: str) -> str:
    """The useful part of a Wasmtime error: the 'Caused by' lines, not the wasm backtrace."""
    if "Caused by:" in msg:
        tail = msg.split("Caused by:", 1)[1]
        parts = [
            ln.strip().split(": ", 1)[-1] if ln.strip()[:1].isdigit() else ln.strip()
            for ln in tail.splitlines()
            if ln.strip()
        ]
        return "; ".join(parts)
    return msg.strip().splitlines()[0] if msg.strip() else "unknown trap"


def _classify_trap(msg: str) -> str | None:
    m = msg.lower()
    if "wasm trap: interrupt" in m:
        return "cpu_time"
    if any(k in m for k in ("memory", "allocation", "out of bounds", "stack", "unreachable")):
        return "memory"
    return None


class Sandbox:
    """A persistent Python REPL in Wasmtime with read-only access to ``prompt``. See the package docstring."""

    def __init__(self, prompt: Prompt, host: HostFunctions | None = None, limits: SandboxLimits | None = None) -> None:
        self.prompt = prompt
        self.host = host or HostFunctions()
        self.limits = limits or SandboxLimits()
        self._rt = _Runtime.get()
        self._lock = threading.Lock()
        self._closed = False
        self._cell_start = 0.0
        self._host_wait = 0.0
        self._interrupt: BaseException | None = None
        self._cpu_spent = False  # a host search timed out: the cell has no CPU time left
        self._raw_out: list[str] = []
        self._raw_err: list[str] = []
        self._raw_n = 0
        self._raw_truncated = False
        self._meta_json = json.dumps(prompt.meta_dict())
        self._instantiate()
        _LIVE.add(self)

    # --- instance lifecycle ------------------------------------------------------------------------------
    def _instantiate(self) -> None:
        store = wasmtime.Store(self._rt.engine)
        wasi = wasmtime.WasiConfig()
        wasi.preopen_dir(str(self.prompt.dir), GUEST_PROMPT_DIR, fs_mutable=False)
        wasi.stdout_custom = self._on_stdout
        wasi.stderr_custom = self._on_stderr
        store.set_wasi(wasi)
        store.set_limits(memory_size=self.limits.memory_bytes)
        store.set_epoch_deadline(_ticks(max(self.limits.cpu_seconds, 5.0)))
        linker = wc.Linker(self._rt.engine)
        linker.add_wasip2()
        linker.allow_shadowing = True
        with linker.root() as root:
            # Blocking sleeps happen in the host where epoch interruption cannot reach them: trap instead.
            # (The guest's `time.sleep` is a CPU-limited busy wait, so only code that digs past it lands here.)
            with root.add_instance(CLOCK_INSTANCE) as clock:
                clock.add_func("now", _clock_now)
                clock.add_func("resolution", _clock_resolution)
                clock.add_func("subscribe-duration", _refuse_sleep)
                clock.add_func("subscribe-instant", _refuse_sleep)
            with root.add_instance(HOST_INSTANCE) as h:
                h.add_func("call", self._host_call)
                h.add_func("slice", self._host_slice)
        instance = linker.instantiate(store, self._rt.component)
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

    # --- host functions (run on the cell's thread, inside wasm) ---------------------------------------------
    def _remaining(self) -> float:
        """Guest CPU time the current cell has left (model waits excluded)."""
        return self.limits.cpu_seconds - (time.monotonic() - self._cell_start - self._host_wait)

    def _rearm(self, ctx: Any) -> None:
        remaining = self._remaining()
        # 0: trap as a CPU limit at the guest's next check. A timed-out search has spent the cell's time by
        # definition, even when the clock shows a few milliseconds left (the regex timeout is not that exact).
        ticks = _ticks(remaining) if remaining > 0 and not self._cpu_spent else 0
        ffi.wasmtime_context_set_epoch_deadline(ctx._context(), ticks)

    def _host_call(self, ctx: Any, name: str, args: str) -> str:
        entered = time.monotonic()
        waiting = name in WAITING_CALLS
        try:
            if self._interrupt is not None:
                raise wasmtime.WasmtimeError("the cell was interrupted on the host")
            payload = json.loads(args)
            result = self._dispatch(name, payload)
            return "0" + (result if isinstance(result, _Raw) else json.dumps(result, ensure_ascii=False))
        except (KeyboardInterrupt, SystemExit) as e:
            # Not the guest's to catch: trap the guest (WasmtimeError is what wasmtime-py turns into a trap without
            # its process-global exception slot); run_cell resets the instance and re-raises this to its caller.
            self._interrupt = e
            raise wasmtime.WasmtimeError(f"the cell was interrupted on the host ({type(e).__name__})") from None
        except wasmtime.WasmtimeError:
            raise
        except SearchTimeout:
            self._cpu_spent = True
            return "1" + (
                f"TimeoutError: the search exceeded the cell's CPU time limit ({self.limits.cpu_seconds:g} s per cell)"
            )
        except BaseException as e:  # noqa: BLE001 - never raise into wasmtime-py (see module docstring)
            return "1" + _cap_head(f"{type(e).__name__}: {e}", 2000)
        finally:
            if waiting:
                self._host_wait += time.monotonic() - entered
            try:
                self._rearm(ctx)
            except BaseException as e:  # noqa: BLE001
                log(_LOG, "error", "could not re-arm the epoch deadline", error=repr(e))

    def _dispatch(self, name: str, a: dict[str, Any]) -> Any:
        p = self.prompt
        if name == "meta":
            return _Raw(self._meta_json)
        if name == "search":
            return p.search(
                str(a["pattern"]),
                int(a.get("max_hits", 20)),
                int(a.get("width", 80)),
                bool(a.get("ignore_case", False)),
                timeout=max(self._remaining(), 0.0),
            )
        if name == "lines":
            return p.lines(int(a.get("start", 0)), a.get("end"))
        if name == "line_at":
            return list(p.line_at(int(a["offset"])))
        if name == "doc_at":
            return p.doc_at(int(a["offset"]))
        if name == "llm_query":
            out = self.host.llm_query(str(a["prompt"]), dict(a.get("opts") or {}))
            return str(out)
        if name == "llm_query_batched":
            outs = self.host.llm_query_batched([str(x) for x in a["prompts"]], dict(a.get("opts") or {}))
            return [str(x) for x in outs]
        if name == "rlm_query":
            return str(self.host.rlm_query(str(a["prompt"]), dict(a.get("opts") or {})))
        raise ValueError(f"unknown host call {name!r}")

    def _host_slice(self, ctx: Any, start: int, end: int) -> str:
        # at most MAX_REPLY_CHARS per call: the guest fetches longer slices piece by piece
        try:
            start = int(start)
            return self.prompt.slice(start, min(int(end), start + MAX_REPLY_CHARS))
        except BaseException:  # noqa: BLE001
            return ""
        finally:
            try:
                self._rearm(ctx)
            except BaseException as e:  # noqa: BLE001
                log(_LOG, "error", "could not re-arm the epoch deadline", error=repr(e))

    # --- public API -------------------------------------------------------------------------------------
    def run_cell(self, code: str) -> CellResult:
        """Run ``code`` in the persistent namespace; never raises for anything the code does."""
        with self._lock:
            if self._closed:
                raise RuntimeError("sandbox is closed")
            t0 = time.monotonic()
            self._cell_start, self._host_wait, self._interrupt, self._cpu_spent = t0, 0.0, None, False
            self._raw_out, self._raw_err, self._raw_n, self._raw_truncated = [], [], 0, False
            cap = self.limits.max_output_chars
            cfg = json.dumps({"max_output_chars": cap})
            res = CellResult()
            self._rt.enter()
            try:
                self._store.set_epoch_deadline(_ticks(self.limits.cpu_seconds))
                raw = self._run(self._store, code, cfg)
                try:
                    self._run.post_return(self._store)
                except wasmtime.WasmtimeError:
                    pass
                data = json.loads(raw)
                res.stdout = str(data.get("stdout") or "")
                res.stderr = str(data.get("stderr") or "")
                res.error = data.get("error")
                res.traceback = data.get("traceback")
                res.display = data.get("display")
                res.variables = [(str(v[0]), str(v[1]), str(v[2])) for v in (data.get("variables") or [])[:500]]
                final = data.get("final")
                res.final = None if final is None else str(final)
                if data.get("memory_error"):
                    res.limit = "memory"
                    res.error = (
                        f"{res.error or 'MemoryError'} (the sandbox memory limit is "
                        f"{self.limits.memory_bytes >> 20} MiB; REPL state kept)"
                    )
                self._raw_truncated = self._raw_truncated or bool(data.get("output_truncated"))
            except Exception as e:  # noqa: BLE001 - a trap: the instance is poisoned
                msg = str(e)
                kind = _classify_trap(msg)
                res.limit = kind
                what = {
                    "cpu_time": f"CPU time limit ({self.limits.cpu_seconds:g} s per cell) exceeded",
                    "memory": f"memory limit ({self.limits.memory_bytes >> 20} MiB) or guest memory fault",
                }.get(kind or "", "the sandbox trapped")
                first = _trap_reason(msg) or type(e).__name__
                res.error = f"SandboxLimitError: {what}; the REPL state was reset (all variables are gone) [{first}]"
                res.state_reset = True
                log(_LOG, "info", "sandbox trapped; replacing the instance", limit=kind, trap=first)
                try:
                    self._instantiate()
                except Exception as e2:  # noqa: BLE001
                    self._closed = True
                    res.error += f"; a fresh instance could not be created: {e2}"
            finally:
                self._rt.leave()
            if self._interrupt is not None:
                interrupt, self._interrupt = self._interrupt, None
                log(_LOG, "info", "cell interrupted on the host; instance replaced", exc=type(interrupt).__name__)
                raise interrupt
            self._finish_output(res)
            res.duration_s = time.monotonic() - t0
            return res

    def _finish_output(self, res: CellResult) -> None:
        """The host's own cap on everything that crossed the boundary (guest capture and raw WASI writes)."""
        cap = self.limits.max_output_chars
        res.stdout += "".join(self._raw_out)
        res.stderr += "".join(self._raw_err)
        truncated = self._raw_truncated
        for attr in ("stdout", "stderr", "display"):
            val = getattr(res, attr)
            if val is not None and len(val) > cap:
                setattr(res, attr, val[:cap])
                truncated = True
        if truncated:
            res.limit = res.limit or "output"
            res.stdout += f"\n[output truncated: at most {cap} chars per stream and cell are kept]"
        # error: its head (the exception type and message start); traceback: its tail (the failing frame and the
        # exception line); the variables table: each entry, and the whole table to about `cap` characters.
        if res.error is not None:
            res.error = _cap_head(res.error, cap)
        if res.traceback is not None:
            res.traceback = _cap_tail(res.traceback, cap)
        rows: list[tuple[str, str, str]] = []
        total = 0
        for name, typ, desc in res.variables:
            row = (_cap_head(name, VAR_NAME_CHARS), _cap_head(typ, VAR_TYPE_CHARS), _cap_head(desc, VAR_DESC_CHARS))
            size = sum(map(len, row))
            if total + size > cap:
                rows.append(("...", "", f"{len(res.variables) - len(rows)} more variables not shown"))
                break
            rows.append(row)
            total += size
        res.variables = rows

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


def _cap_head(text: str, n: int) -> str:
    if len(text) <= n:
        return text
    return text[:n] + f"... [{len(text) - n} more chars]"


def _cap_tail(text: str, n: int) -> str:
    if len(text) <= n:
        return text
    return f"[{len(text) - n} chars cut] ..." + text[-n:]


class _Raw(str):
    """A JSON document that is already encoded."""
