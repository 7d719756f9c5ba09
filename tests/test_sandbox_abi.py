"""wasm_sandbox/_abi.py builds on wasmtime-py's private ``_ffi``: this pins the version it was written against.

When wasmtime-py moves, these fail first and say what to re-check, instead of the sandbox failing later in C.
"""

from __future__ import annotations

import ctypes
import tomllib
from importlib import metadata
from pathlib import Path

import wasmtime
from wasmtime import _bindings
from wasmtime import _ffi as ffi

from wasm_sandbox import _abi

ROOT = Path(__file__).resolve().parent.parent
MOVED = (
    "wasm_sandbox/_abi.py uses wasmtime-py's private _ffi, written against wasmtime {tested}; {what}. Re-check its "
    "struct layouts and callback signatures against the new version, run tests/test_sandbox*.py, then move the pin "
    "(pyproject.toml and _abi.TESTED_WASMTIME) together."
)


def _pinned() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d.split("==", 1)[1] for d in deps if d.startswith("wasmtime==")]
    assert len(pins) == 1, "pyproject.toml must pin wasmtime with == (see wasm_sandbox/_abi.py)"
    return pins[0]


def test_wasmtime_version_is_the_tested_one() -> None:
    installed = metadata.version("wasmtime")
    tested = _abi.TESTED_WASMTIME
    assert _pinned() == tested, MOVED.format(tested=tested, what=f"pyproject.toml pins {_pinned()}")
    assert installed == tested, MOVED.format(tested=tested, what=f"wasmtime {installed} is installed")


def test_private_symbols_have_the_shapes_used() -> None:
    tested = _abi.TESTED_WASMTIME
    add = _bindings._wasmtime_component_linker_instance_add_func
    assert add.argtypes[3] is ffi.wasmtime_component_func_callback_t, MOVED.format(
        tested=tested, what="the component host-function callback type changed"
    )
    epoch = _bindings._wasmtime_store_epoch_deadline_callback
    assert epoch.argtypes[0] is ctypes.POINTER(ffi.wasmtime_store_t), MOVED.format(
        tested=tested, what="wasmtime_store_epoch_deadline_callback changed"
    )
    callback = epoch.argtypes[1]
    assert callback._restype_ is ctypes.c_size_t, MOVED.format(tested=tested, what="the epoch callback's result")
    assert callback._argtypes_ == _abi._EPOCH_CALLBACK_T._argtypes_, MOVED.format(
        tested=tested, what="the epoch callback's arguments"
    )
    assert (_abi._STRING, _abi._U64) == (12, 8), MOVED.format(tested=tested, what="the component value kinds")
    for name in ("wasmtime_error_new", "wasm_byte_vec_new", "wasm_byte_vec_delete"):
        assert callable(getattr(ffi, name, None)), MOVED.format(tested=tested, what=f"ffi.{name} is gone")


def test_no_public_api_serves_yet() -> None:
    """_abi exists because the public API has no epoch callback; when one appears, use it and drop this hook."""
    public = [n for n in dir(wasmtime.Store) if "epoch" in n and not n.startswith("_")]
    assert public == ["set_epoch_deadline"], (
        f"wasmtime.Store now has {public}: if one is an epoch-deadline callback, use it in wasm_sandbox/sandbox.py "
        "instead of _abi.set_epoch_callback"
    )
