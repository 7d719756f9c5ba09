"""JSON-lines traces of RLM runs, and the ``outcore trace FILE`` call-tree printer.

Why events instead of snapshots: every event is written exactly once, as it happens (run start with the config,
each root turn's start and end, each cell's start with its code and end with output/timing, each sub-call start
and end with its parent, run end). Every event carries ``run`` (the top-level run), ``id``, ``parent`` and
``depth``, so a live view can place it in the tree the moment it arrives. A trace
grows linearly with the work, survives a crash up to the last line, and the tree is rebuilt from parent ids.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import IO, Any

from engine.errors import UserError
from models import cache_root

_LOG = logging.getLogger("outcore.trace")

MAX_FIELD_CHARS = 20_000  # long strings (cell output, prompts) are cut in the trace too, with the true length


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def default_trace_dir() -> Path:
    env = os.environ.get("OUTCORE_TRACE_DIR")
    return Path(env).expanduser() if env else cache_root() / "traces"


def clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} chars cut, {len(text)} total ...]\n{text[-half:]}"


class TraceUnavailableError(UserError):
    """The trace file cannot be created (a read-only or unusable trace directory): refused before the run starts."""


class TraceWriter:
    """Appends one JSON object per event to a file; safe to share between threads (parent and child runs).

    A trace that cannot be created is refused up front (:class:`TraceUnavailableError`). A write that fails later
    (a full disk, ENOSPC) must not cost the run its answer: the writer stops, keeps the reason in ``error`` and
    logs it once; the run goes on and the trace holds every event up to the failure.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._fh: IO[str] | None = None
        self.error: str | None = None
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            except OSError as e:
                raise TraceUnavailableError(
                    f"cannot write the trace {self.path}: {e.strerror or e}; "
                    "give a writable directory with --trace DIR (Python API: trace=DIR, or trace=False)"
                ) from None

    def emit(self, event: str, **fields: Any) -> None:
        if self._fh is None:
            return
        rec = {"event": event, "ts": round(time.time(), 4), **fields}
        line = json.dumps(rec, ensure_ascii=False, default=str)
        with self._lock:
            if self._fh is None:
                return
            try:
                self._fh.write(line + "\n")
                self._fh.flush()
            except OSError as e:
                self._fail(e)

    def _fail(self, e: OSError) -> None:
        self.error = f"the trace {self.path} stopped at a failed write: {e.strerror or e}"
        _LOG.warning("trace write failed; the run goes on without it", extra={"fields": {"error": self.error}})
        fh, self._fh = self._fh, None
        try:
            if fh is not None:
                fh.close()
        except OSError:
            pass

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                try:
                    self._fh.close()
                except OSError as e:
                    self._fail(e)
                self._fh = None


# ----------------------------------------------------------------------------------------------------------------
# Reading and printing


def read_events(path: str | Path) -> list[dict[str, Any]]:
    events = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a torn last line from a crashed run
    return events


def _short(text: Any, n: int = 70) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def summarize(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals of a trace: runs, turns, cells, sub-calls, tokens per model, finish reason, elapsed."""
    tokens: dict[str, int] = defaultdict(int)
    out: dict[str, Any] = {"runs": 0, "root_turns": 0, "cells": 0, "sub_calls": 0, "errors": 0}
    for e in events:
        ev = e.get("event")
        if ev == "run_start":
            out["runs"] += 1
        elif ev == "root_turn":
            out["root_turns"] += 1
            tokens[e.get("model", "?")] += int(e.get("prompt_tokens", 0)) + int(e.get("completion_tokens", 0))
        elif ev == "cell":
            out["cells"] += 1
            out["errors"] += 1 if e.get("error") else 0
        elif ev == "subcall_end":
            out["sub_calls"] += int(e.get("n", 1)) if e.get("kind") != "rlm" else 1
            if e.get("kind") != "rlm":
                tokens[e.get("model", "?")] += int(e.get("prompt_tokens", 0)) + int(e.get("completion_tokens", 0))
        elif ev == "run_end" and e.get("depth", 0) == 0:
            out["finish_reason"] = e.get("finish_reason")
            out["elapsed_s"] = e.get("elapsed_s")
            out["answer"] = e.get("answer")
    out["tokens"] = dict(tokens)
    return out


def format_tree(events: list[dict[str, Any]]) -> str:
    """The call tree: runs contain turns, turns contain cells, cells contain sub-calls (and child runs)."""
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    ends: dict[str, dict[str, Any]] = {}
    code: dict[str, str] = {}  # a cell's code is written once, in its cell_start event
    for e in events:
        ev = e.get("event")
        if ev in ("run_end", "subcall_end"):
            ends[e["id"]] = e
        elif ev in ("run_start", "root_turn", "cell", "subcall_start"):
            children[e.get("parent")].append(e)
        elif ev == "cell_start":
            code[e["id"]] = e.get("code", "")

    lines: list[str] = []

    def walk(node_id: str | None, indent: int) -> None:
        for e in children.get(node_id, []):
            pad = "  " * indent
            ev = e["event"]
            if ev == "run_start":
                end = ends.get(e["id"], {})
                meta = e.get("prompt_meta", {})
                lines.append(
                    f"{pad}run {e['id']} depth={e.get('depth', 0)} root={e.get('root')} worker={e.get('worker')} "
                    f"prompt={meta.get('chars', '?')} chars  q={_short(e.get('question') or '', 50)!r}"
                )
                walk(e["id"], indent + 1)
                if end:
                    lines.append(
                        f"{pad}└ end {end.get('finish_reason')} in {end.get('elapsed_s', 0):.1f}s "
                        f"answer={_short(end.get('answer') or '', 60)!r}"
                    )
            elif ev == "root_turn":
                lines.append(
                    f"{pad}turn {e.get('turn')}: {e.get('latency_s', 0):.1f}s "
                    f"{e.get('prompt_tokens', 0)}+{e.get('completion_tokens', 0)} tok"
                    f"{' (cached ' + str(e.get('cached_tokens')) + ')' if e.get('cached_tokens') else ''}"
                    f"{'  [no code]' if not e.get('has_code') else ''}"
                )
                walk(e["id"], indent + 1)
            elif ev == "cell":
                status = e.get("limit") or ("error" if e.get("error") else ("FINAL" if e.get("final") else "ok"))
                lines.append(
                    f"{pad}cell {e.get('duration_s', 0):.2f}s [{status}] {_short(code.get(e['id'], e.get('code', '')), 60)!r} "
                    f"-> {e.get('output_chars', 0)} chars"
                )
                walk(e["id"], indent + 1)
            elif ev == "subcall_start":
                end = ends.get(e["id"], {})
                lines.append(
                    f"{pad}{e.get('kind')} x{e.get('n', 1)} depth={e.get('depth')} {e.get('model', '')} "
                    f"{end.get('latency_s', 0):.2f}s {end.get('prompt_tokens', 0)}+{end.get('completion_tokens', 0)}"
                    f" tok{'  ERROR: ' + _short(end.get('error'), 60) if end.get('error') else ''}"
                    f"  {_short(e.get('prompt_preview', ''), 40)!r} -> {_short(end.get('result_preview', ''), 30)!r}"
                )
                walk(e["id"], indent + 1)

    walk(None, 0)
    s = summarize(events)
    lines.append(
        f"total: {s['runs']} run(s), {s['root_turns']} root turns, {s['cells']} cells ({s['errors']} failed), "
        f"{s['sub_calls']} sub-calls, tokens {s['tokens']}"
    )
    return "\n".join(lines)


def register(subparsers: Any) -> None:
    """``outcore trace FILE``: print the call tree of a trace."""
    p = subparsers.add_parser("trace", help="print the call tree of an RLM trace (JSON lines)")
    p.add_argument("file", help="trace file written by `outcore run` (path printed at the end of a run)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of the tree")
    p.set_defaults(func=_cmd_trace)


def _cmd_trace(args: Any) -> int:
    events = read_events(args.file)
    if args.json:
        print(json.dumps(summarize(events), indent=2, ensure_ascii=False))
    else:
        print(format_tree(events))
    return 0
