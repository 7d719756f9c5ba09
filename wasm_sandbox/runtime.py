"""The process-wide part of the sandbox: one Wasmtime engine + compiled component per cache, and the epoch ticker.

Why process-wide: compiling the component takes seconds and deserialising it milliseconds, while a store and an
instance per sandbox cost about 2 ms, so every sandbox of a process shares one engine and component. The ticker
bumps the engine's epoch every :data:`TICK_S` while any guest code may run; each store's epoch callback then
decides whether its guest may go on (see ``Sandbox._on_epoch``).

Thread safety (wasmtime-py 50.0.1, read in ``wasmtime/_slab.py``, ``component/_linker.py``, ``component/_enter.py``):
* wasmtime-py's handle tables (``Slab``) are dicts with a monotonic counter: each operation is GIL-atomic, so
  registering host functions and instantiating from several threads is safe. Engine and component are shared
  read-only (``Send + Sync`` in Wasmtime); each sandbox owns its store and linker, and runs one cell at a time.
* Not safe: wasmtime-py's trampoline hands a *non*-``WasmtimeError`` exception from a host function to the caller
  through one process-global slot (``LAST_EXCEPTION``), which a concurrent sandbox could pick up. The sandbox's own
  host functions go through :mod:`wasm_sandbox._abi` (never that slot), and the few that use wasmtime-py's
  trampoline (the clock's sleep refusals) raise only ``WasmtimeError``.
* Creating the runtime (engine, component, ticker) is serialised by a lock.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import wasmtime
import wasmtime.component as wc

from .artifacts import SandboxNotBuiltError, artifact_paths, compile_component, make_config

TICK_S = 0.01
_LOG = logging.getLogger("outcore.sandbox")


class Runtime:
    _lock = threading.Lock()
    _instances: dict[tuple[str | None, str | None], Runtime] = {}

    def __init__(self, cache_root: str | os.PathLike[str] | None) -> None:
        arts = artifact_paths(cache_root)
        self.engine = wasmtime.Engine(make_config())
        if not arts.compiled.exists():
            if not arts.guest_wasm.exists():
                raise SandboxNotBuiltError(
                    f"the sandbox guest is not built (expected {arts.guest_wasm}); "
                    "run `python -m wasm_sandbox.build` once (about 15-25 s)"
                )
            _LOG.warning(
                "compiling the sandbox component (not cached yet)", extra={"fields": {"path": str(arts.compiled)}}
            )
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
    def get(cls, cache_root: str | os.PathLike[str] | None = None) -> Runtime:
        """The runtime for the artifacts under ``cache_root`` (created once; again if its artifact vanished)."""
        # keyed by what decides the path (hashing the guest sources for every Sandbox would cost ~0.5 ms)
        key = (None if cache_root is None else str(cache_root), os.environ.get("OUTCORE_CACHE_DIR"))
        with cls._lock:
            rt = cls._instances.get(key)
            if rt is None or not rt.path.exists():
                rt = cls._instances[key] = Runtime(cache_root)
            return rt


def trap_reason(msg: str) -> str:
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


def classify_trap(msg: str) -> str | None:
    m = msg.lower()
    if "wasm trap: interrupt" in m:
        return "cpu_time"
    if any(k in m for k in ("memory", "allocation", "out of bounds", "stack", "unreachable")):
        return "memory"
    return None
