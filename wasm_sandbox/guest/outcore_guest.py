"""The guest REPL that runs inside the Wasmtime sandbox (built into a component by componentize-py).

This module is the REPL (namespace, reserved names, output capture, the ``run-cell`` export); the names it gives
cells that reach the host (``context``, the helpers, the model calls) live in ``outcore_api.py``.

Everything imported at module level is part of the pre-initialised snapshot; componentize-py only ships stdlib
modules imported at build time, so every module on the allow-list is imported here. This Python is *not* the
security boundary (hostile code can reach anything inside this interpreter); WebAssembly + WASI is. The
allow-list, reserved names and output capture exist so that honest model code gets clear, stable behaviour.
"""

# ruff: noqa: E402, F401, I001
import ast
import builtins
import gc
import io
import linecache
import os
import reprlib
import sys
import traceback
import types

# --- the allow-list: imported now so they are in the snapshot ---------------------------------------------
import abc
import array
import base64
import bisect
import calendar
import collections
import collections.abc
import contextlib
import copy
import csv
import dataclasses
import datetime
import decimal
import difflib
import enum
import fractions
import functools
import hashlib
import heapq
import html
import itertools
import json
import math
import numbers
import operator
import pprint
import random
import re
import statistics
import string
import struct
import textwrap
import time
import typing
import unicodedata

from wit_world.imports import host as _host

import outcore_api
import outcore_ops
import outcore_records
import outcore_results
import outcore_values
from outcore_api import (
    HostError,
    Context,
    Chunks,
    context,
    search,
    lines,
    line_at,
    retrieve,
    chunks,
    doc_titles,
    files,
    read_file,
    definition,
    llm_map,
    classify,
    llm_query,
    llm_query_batched,
    rlm_query,
    _forwarder,
    _coerce,
    _call,
)

ALLOWED_MODULES = frozenset(
    """abc array base64 bisect calendar collections contextlib copy csv dataclasses datetime decimal difflib
    enum fractions functools hashlib heapq html itertools json math numbers operator pprint random re
    statistics string struct textwrap time typing unicodedata""".split()
)

# No host environment leaks in through the build-time snapshot.
os.environ.clear()

_REPR_LIMIT = 2000
_ERROR_CHARS = 20_000  # error head / traceback tail kept by the guest (the host caps again, to max_output_chars)


class _State:
    final = None
    cell = 0
    seeded = False
    extras_loaded = False
    max_output = 20_000
    probe_bytes = 8 << 20  # the host sends its own (SandboxLimits.memory_probe_bytes)


def FINAL(value):
    """Record the final answer (as str(value)); the run ends after this cell.

    A function or a class stands for its name: "<function validate_session at 0xbb2378>" is no answer. Seen on the
    general test split (g-code-caller): the root, asked for a caller's name, defined that function and FINAL'd it."""
    if callable(value) and isinstance(getattr(value, "__name__", None), str):
        value = value.__name__
    _State.final = str(_coerce(value))
    return None


def SHOW_VARS():
    """Print the user variables defined so far with their types."""
    rows = _variables()
    if not rows:
        print("(no variables)")
    for name, typ, desc in rows:
        print(f"{name}: {typ} = {desc}")


# --- the restricted re module (coerces `context` to str) ----------------------------------------------------
class _PatternProxy:
    __slots__ = ("_p",)

    def __init__(self, p):
        object.__setattr__(self, "_p", p)

    def __getattr__(self, name):
        attr = getattr(self._p, name)
        if callable(attr):

            def method(*args, **kwargs):
                return attr(*[_coerce(a) for a in args], **kwargs)

            return method
        return attr

    def __repr__(self):
        return repr(self._p)


def _make_re():
    mod = types.ModuleType("re", re.__doc__)
    for name in dir(re):
        if not name.startswith("__"):
            setattr(mod, name, getattr(re, name))
    for name in ("search", "match", "fullmatch", "findall", "finditer", "split", "sub", "subn"):
        fn = getattr(re, name)

        def wrapped(*args, _fn=fn, **kwargs):
            return _fn(*[_coerce(a) for a in args], **{k: _coerce(v) for k, v in kwargs.items()})

        wrapped.__name__ = name
        setattr(mod, name, wrapped)
    mod.compile = lambda pattern, flags=0: _PatternProxy(re.compile(pattern, flags))
    return mod


def _make_json():
    mod = types.ModuleType("json", json.__doc__)
    for name in dir(json):
        if not name.startswith("__"):
            setattr(mod, name, getattr(json, name))
    mod.loads = lambda s, *a, **k: json.loads(_coerce(s), *a, **k)
    return mod


def _sleep(seconds):
    """time.sleep as a busy wait: it counts against the cell's CPU limit and can be interrupted."""
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        pass


def _make_time():
    mod = types.ModuleType("time", time.__doc__)
    for name in dir(time):
        if not name.startswith("__"):
            setattr(mod, name, getattr(time, name))
    mod.sleep = _sleep
    return mod


_PROXIES = {"re": _make_re(), "json": _make_json(), "time": _make_time()}
_real_import = builtins.__import__


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    top = name.split(".")[0]
    if level != 0 or top not in ALLOWED_MODULES:
        raise ImportError(
            f"module {name!r} is not available in the sandbox. Allowed modules: {', '.join(sorted(ALLOWED_MODULES))}"
        )
    if name in _PROXIES:
        return _PROXIES[name]
    return _real_import(name, globals, locals, fromlist, level)


_REMOVED_BUILTINS = ("open", "input", "exit", "quit", "help", "breakpoint", "copyright", "credits", "license")


def _make_builtins():
    b = {k: v for k, v in vars(builtins).items() if k not in _REMOVED_BUILTINS}
    b["__import__"] = _import
    return b


# Every name the sandbox provides is restored after each cell; a cell may use the name for its own value while it
# runs, and the host is told (CellResult.restored_names) so the model can learn to pick another name.
_RESERVED = {
    "context": context,
    "llm_query": llm_query,
    "llm_query_batched": llm_query_batched,
    "rlm_query": rlm_query,
    "FINAL": FINAL,
    "SHOW_VARS": SHOW_VARS,
    "search": search,
    "lines": lines,
    "line_at": line_at,
    "retrieve": retrieve,
    "chunks": chunks,
    "doc_titles": doc_titles,
    "files": files,
    "read_file": read_file,
    "definition": definition,
    "llm_map": llm_map,
    "classify": classify,
    "HostError": HostError,  # what a failed host call raises: `except HostError as e: ...`
    # the typed operators (see outcore_ops.py); StepRefused is what a refused step raises
    **{name: getattr(outcore_ops, name) for name in outcore_ops.NAMES},
}

_NS = {"__name__": "__main__", "__doc__": None}
outcore_ops.bind(_call, HostError, _NS)


def _load_extras(names):
    """Forwarders for host-provided calls that have no wrapper here (done once, at the first cell)."""
    if _State.extras_loaded:
        return
    _State.extras_loaded = True
    for name in names or []:
        hidden = name in outcore_ops.HOST_CALLS  # reached through the operators, not called by name
        if name.isidentifier() and name not in _RESERVED and not name.startswith("_") and not hidden:
            _RESERVED[name] = _forwarder(name)


def _changed():
    return [k for k, v in _RESERVED.items() if _NS.get(k) is not v]


def _restore():
    _NS["__builtins__"] = _make_builtins()
    _NS.update(_RESERVED)


_restore()


# --- output capture ---------------------------------------------------------------------------------------
class _Capture(io.TextIOBase):
    def __init__(self, cap):
        self.parts = []
        self.n = 0
        self.cap = cap
        self.truncated = False

    def writable(self):
        return True

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        room = self.cap - self.n
        if room > 0:
            part = s[:room]
            self.parts.append(part)
            self.n += len(part)
        if len(s) > max(room, 0):
            self.truncated = True
        return len(s)

    def getvalue(self):
        return "".join(self.parts)


# Bounded reprs: a variable holding a 40 MB list must not be fully repr'd after every cell.
_SHORT = reprlib.Repr(
    maxlevel=2,
    maxlist=5,
    maxtuple=5,
    maxdict=4,
    maxset=5,
    maxfrozenset=5,
    maxdeque=5,
    maxarray=5,
    maxstring=40,
    maxlong=40,
    maxother=60,
)
_BIG = reprlib.Repr(
    maxlevel=4,
    maxlist=300,
    maxtuple=300,
    maxdict=150,
    maxset=150,
    maxfrozenset=150,
    maxdeque=150,
    maxarray=150,
    maxstring=400,
    maxlong=400,
    maxother=400,
)
_SIZED = (list, tuple, set, frozenset, dict, collections.deque, collections.Counter, collections.OrderedDict)


def _short(value):
    try:
        if isinstance(value, str):
            return f"{len(value)} chars: {value[:60]!r}"
        if isinstance(value, _SIZED):
            r = _SHORT.repr(value)
            return f"len {len(value)}: {r[:80]}"
        r = _SHORT.repr(value)
        return r[:80] + ("..." if len(r) > 80 else "")
    except BaseException as e:  # noqa: BLE001 - a hostile __repr__ must not break the REPL
        return f"<repr failed: {type(e).__name__}>"


def _variables():
    out = []
    for name, value in list(_NS.items()):
        if name.startswith("_") or _RESERVED.get(name) is value:
            continue
        if isinstance(value, types.ModuleType):
            continue
        out.append((name[:100], type(value).__name__[:100], _short(value)[:200]))
        if len(out) >= 500:
            break
    return out


def _safe_repr(value, cap):
    try:
        if isinstance(value, str) and len(value) > cap:
            return repr(value[:cap]) + f"... [{len(value)} chars in total]"
        if isinstance(value, _SIZED) and len(value) > 1000:
            return _BIG.repr(value)[:cap] + f" [{len(value)} items in total]"
        r = repr(value)
    except BaseException as e:  # noqa: BLE001
        return f"<repr failed: {type(e).__name__}: {e}>"
    if len(r) > cap:
        r = r[:cap] + f"... [{len(r) - cap} more chars]"
    return r


_PLUMBING = frozenset(
    {
        __file__,
        outcore_api.__file__,
        outcore_ops.__file__,
        outcore_values.__file__,
        outcore_records.__file__,
        outcore_results.__file__,
    }
)


def _format_tb(e):
    # keep only the user's frames (cells and stdlib), not this module's plumbing
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename not in _PLUMBING]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(e), e)
    return "".join(lines)


def _run(code, max_output):
    _State.cell += 1
    _State.final = None
    filename = f"<cell-{_State.cell}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    out, err = _Capture(max_output), _Capture(max_output)
    old_out, old_err = sys.stdout, sys.stderr
    result = {"error": None, "traceback": None, "display": None, "memory_error": False}
    sys.stdout, sys.stderr = out, err
    try:
        _restore()
        tree = ast.parse(code, filename, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, filename, "exec"), _NS)
        if last is not None:
            value = eval(compile(last, filename, "eval"), _NS)
            if value is not None:
                result["display"] = _safe_repr(value, min(max_output, _REPR_LIMIT * 10))
    except BaseException as e:  # noqa: BLE001 - SystemExit and friends end the cell, not the REPL
        try:
            result["error"] = type(e).__name__[:_ERROR_CHARS]
            result["error"] = f"{type(e).__name__}: {e}"[:_ERROR_CHARS]
            result["traceback"] = _format_tb(e)[-_ERROR_CHARS:]
        except BaseException:  # noqa: BLE001
            pass
        result["memory_error"] = isinstance(e, MemoryError)
    finally:
        sys.stdout, sys.stderr = old_out, old_err
        try:
            result["restored"] = _changed()
        except BaseException:  # noqa: BLE001
            result["restored"] = []
        _restore()
    if result["memory_error"]:
        result["memory_exhausted"] = not _memory_recovers()
    try:
        variables = _variables()
    except BaseException:  # noqa: BLE001
        variables = []
    result.update(
        stdout=out.getvalue(),
        stderr=err.getvalue(),
        output_truncated=out.truncated or err.truncated,
        variables=variables,
        final=_State.final,
    )
    return result


def _memory_recovers():
    """After a MemoryError: is there room for the next cell? The cell's garbage is collected, then a block of
    ``_State.probe_bytes`` is allocated and freed. Whether the failed allocation was one huge request (memory is
    free again) or the last small one of a loop that filled memory with objects the globals still hold, the answer
    is the same on every machine: room for the probe, or not (and then the host resets the REPL state)."""
    try:
        gc.collect()
        block = bytearray(_State.probe_bytes)
        del block
        return True
    except MemoryError:
        return False


class WitWorld:
    def run_cell(self, code: str, config: str) -> str:
        cfg = json.loads(config or "{}")
        if not _State.seeded:
            random.seed()  # the snapshot would otherwise give every sandbox the same random sequence
            _State.seeded = True
        _load_extras(cfg.get("extras"))
        _State.probe_bytes = int(cfg.get("memory_probe_bytes", _State.probe_bytes))
        try:
            return json.dumps(_run(code, int(cfg.get("max_output_chars", _State.max_output))))
        except MemoryError:
            return _OOM_RESULT  # not even the result could be built: memory is exhausted


_OOM_RESULT = json.dumps(
    {
        "error": "MemoryError: out of memory",
        "traceback": None,
        "display": None,
        "memory_error": True,
        "memory_exhausted": True,
        "stdout": "",
        "stderr": "",
        "output_truncated": False,
        "variables": [],
        "final": None,
    }
)
