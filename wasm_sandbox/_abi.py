"""Raw Wasmtime C-API hooks the sandbox needs on its hot path, below wasmtime-py's generic wrappers.

Why private bindings: wasmtime-py's public API (checked for 50.0.1) does not serve the two hooks below.

- Host functions. The public ``LinkerInstance.add_func`` works, but its trampoline builds a ``FuncType`` and walks
  its parameter types through the C API on *every* call, which was about half of the host-call round trip (76-79 µs
  before, 12 µs after; ``bench/results/sandbox.json``), and it reports a Python exception through a process-global
  slot (``wasmtime.component._enter.LAST_EXCEPTION``) that concurrent sandboxes in several threads would share. Our
  host functions have fixed signatures (strings and u64s in, one string or u64 out), so this module registers them
  with a trampoline that decodes exactly those values.
- The epoch callback. The public ``Store.set_epoch_deadline`` can only trap at the deadline; there is no public
  ``wasmtime_store_epoch_deadline_callback``. With the callback, Wasmtime asks the host every epoch tick (10 ms)
  whether the guest may go on, so a cell is stopped for its CPU limit or for cancellation while it computes (time
  spent waiting for a model does not count), and host calls no longer re-arm a deadline on their way out.

Contract of the callables registered here (enforced by the trampolines): they never raise into C. A :class:`Trap`
(or any other exception) becomes a Wasmtime error, which traps the guest; nothing goes through wasmtime-py's
process-global exception slot, so concurrent sandboxes in several threads cannot see each other's errors. Handles
live in a dict (GIL-atomic operations, like wasmtime-py's own ``Slab``) and are released by the finalizer Wasmtime
runs when the linker or store that holds them is deleted.

The pin: ``wasmtime==50.0.1`` (pyproject.toml) is :data:`TESTED_WASMTIME`. ``tests/test_sandbox_abi.py`` fails
loudly when the installed version, the pin or the private symbols used here change, and when a public epoch
callback appears (then this module should use it); tests/test_sandbox*.py exercise every path here.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable
from importlib import metadata
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

TESTED_WASMTIME = "50.0.1"  # the struct layouts below are this version's; tests/test_sandbox_abi.py pins it
if metadata.version("wasmtime").split(".")[0] != TESTED_WASMTIME.split(".")[0]:
    raise ImportError(
        f"wasm_sandbox needs wasmtime {TESTED_WASMTIME} (pinned in pyproject.toml), "
        f"found {metadata.version('wasmtime')}: pip install wasmtime=={TESTED_WASMTIME}"
    )

_STRING = ffi.WASMTIME_COMPONENT_STRING.value
_U64 = ffi.WASMTIME_COMPONENT_U64.value
_CONTINUE = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE (a C enum the bindings do not name)

_HANDLES: dict[int, tuple[Callable[..., Any], int]] = {}  # handle -> (callable, result kind)
_COUNTER = itertools.count(1)


class Trap(Exception):
    """Raised by a registered callable to trap the guest with this message."""


_PENDING = threading.local()  # a KeyboardInterrupt/SystemExit that arrived inside a callback, per thread


def take_interrupt() -> BaseException | None:
    """The ``KeyboardInterrupt``/``SystemExit`` that trapped the guest on this thread (once), so the caller of the
    guest can re-raise it. (A thread-local, unlike wasmtime-py's process-global exception slot.)"""
    exc = getattr(_PENDING, "exc", None)
    _PENDING.exc = None
    return exc


def _interrupted(e: BaseException) -> int:
    _PENDING.exc = e
    return _error_ptr(f"interrupted on the host ({type(e).__name__})")


def _error_ptr(msg: str) -> int:
    ptr = ffi.wasmtime_error_new(msg.encode("utf-8", errors="replace"))
    return int(ctypes.cast(ptr, ctypes.c_void_p).value or 0)


def _allocate(fn: Callable[..., Any], kind: int = 0) -> int:
    idx = next(_COUNTER)
    _HANDLES[idx] = (fn, kind)
    return idx


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _finalize(idx: int | None) -> None:
    _HANDLES.pop(idx or 0, None)


def _read_string(val: Any) -> str:
    vec = val.of.string
    try:
        return ctypes.string_at(vec.data, vec.size).decode("utf-8", errors="replace")
    finally:
        ffi.wasm_byte_vec_delete(ctypes.byref(vec))


@ffi.wasmtime_component_func_callback_t
def _func_impl(idx: int | None, _ctx: Any, _ty: Any, args: Any, nargs: int, results: Any, nresults: int) -> int:
    try:
        fn, result_kind = _HANDLES[idx or 0]
        pyargs: list[Any] = []
        for i in range(nargs):
            a = args[i]
            kind = a.kind
            if kind == _STRING:
                pyargs.append(_read_string(a))
            elif kind == _U64:
                pyargs.append(int(a.of.u64))
            else:
                raise Trap(f"unsupported host-call argument kind {kind}")
        out = fn(*pyargs)
        if nresults:
            res = results[0]
            if result_kind == _U64:
                res.kind = _U64
                res.of.u64 = int(out)
            else:
                data = out.encode("utf-8", errors="replace")
                res.kind = _STRING
                ffi.wasm_byte_vec_new(
                    ctypes.byref(res.of.string), len(data), ctypes.cast(data, ctypes.POINTER(ffi.wasm_byte_t))
                )
        return 0
    except Trap as e:
        return _error_ptr(str(e))
    except (KeyboardInterrupt, SystemExit) as e:
        return _interrupted(e)
    except BaseException as e:  # noqa: BLE001 - nothing may unwind into C
        return _error_ptr(f"host function failed: {type(e).__name__}: {e}")


def add_func(instance: Any, name: str, fn: Callable[..., Any], result: str = "string") -> None:
    """Define ``name`` in a component ``LinkerInstance`` as ``fn(*args)`` (string/u64 args; one ``result``:
    ``"string"`` (``fn`` returns a str) or ``"u64"`` (an int)).

    ``fn`` is called on the thread running the guest, with the GIL held; a :class:`Trap` it raises traps the
    guest; any other exception does too (callers should turn expected failures into an in-band reply instead).
    """
    instance._assert_not_locked()
    name_bytes = name.encode("utf-8")
    if result not in ("string", "u64"):
        raise ValueError(f"unsupported result type {result!r}")
    idx = _allocate(fn, _U64 if result == "u64" else _STRING)
    err = ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(), ctypes.create_string_buffer(name_bytes), len(name_bytes), _func_impl, idx, _finalize
    )
    if err:
        _HANDLES.pop(idx, None)
        raise wasmtime.WasmtimeError._from_ptr(err)


_EPOCH_CALLBACK_T = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)


@_EPOCH_CALLBACK_T
def _epoch_impl(_ctx: Any, idx: int | None, delta: Any, kind: Any) -> int:
    try:
        ticks = int(_HANDLES[idx or 0][0]())
        delta[0] = max(1, ticks)
        kind[0] = _CONTINUE
        return 0
    except Trap as e:
        return _error_ptr(str(e))
    except (KeyboardInterrupt, SystemExit) as e:  # Ctrl-C lands here while the guest computes
        return _interrupted(e)
    except BaseException as e:  # noqa: BLE001
        return _error_ptr(f"epoch check failed: {type(e).__name__}: {e}")


def set_epoch_callback(store: wasmtime.Store, fn: Callable[[], int]) -> None:
    """Call ``fn()`` whenever ``store``'s epoch deadline is reached: it returns the ticks until the next call, or
    raises :class:`Trap` to stop the guest. Replaces Wasmtime's default (trap at the deadline)."""
    idx = _allocate(fn)
    ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), _epoch_impl, idx, _finalize)
