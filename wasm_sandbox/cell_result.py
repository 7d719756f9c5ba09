"""What a cell returns (:class:`CellResult`): read from the guest's JSON answer and capped on the host.

Why apart from :mod:`wasm_sandbox.sandbox`: the Sandbox runs the store and enforces limits; this module only
turns what crossed the boundary into a bounded result. Nothing crosses uncapped (F2): each stream, the display
repr, the error's head, the traceback's tail, and each row and the whole of the variables table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VAR_NAME_CHARS, VAR_TYPE_CHARS, VAR_DESC_CHARS = 100, 100, 200  # per-field caps of the variables table


@dataclass
class CellResult:
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    traceback: str | None = None
    display: str | None = None
    variables: list[tuple[str, str, str]] = field(default_factory=list)
    final: str | None = None
    limit: str | None = None  # None | "cpu_time" | "memory" | "output" | "cancelled"
    state_reset: bool = False
    duration_s: float = 0.0
    # built-in names (helpers, llm_query, context, ...) the cell rebound or deleted; they were restored after it
    restored_names: list[str] = field(default_factory=list)


def fill_from_guest(data: dict[str, Any], res: CellResult, memory_bytes: int) -> bool:
    """Fill ``res`` from the guest's answer; True when memory stayed exhausted (the state must be reset)."""
    res.stdout = str(data.get("stdout") or "")
    res.stderr = str(data.get("stderr") or "")
    res.error = data.get("error")
    res.traceback = data.get("traceback")
    res.display = data.get("display")
    res.variables = [(str(v[0]), str(v[1]), str(v[2])) for v in (data.get("variables") or [])[:500]]
    res.restored_names = [str(n)[:VAR_NAME_CHARS] for n in (data.get("restored") or [])[:100]]
    final = data.get("final")
    res.final = None if final is None else str(final)
    exhausted = bool(data.get("memory_exhausted"))
    if data.get("memory_error"):
        res.limit = "memory"
        kept = "" if exhausted else "; REPL state kept"
        res.error = f"{res.error or 'MemoryError'} (the sandbox memory limit is {memory_bytes >> 20} MiB{kept})"
    return exhausted


def cap_output(res: CellResult, cap: int, raw_out: list[str], raw_err: list[str], truncated: bool) -> None:
    """The host's own cap on everything that crossed the boundary (guest capture and raw WASI writes)."""
    res.stdout += "".join(raw_out)
    res.stderr += "".join(raw_err)
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
        res.error = cap_head(res.error, cap)
    if res.traceback is not None:
        res.traceback = cap_tail(res.traceback, cap)
    rows: list[tuple[str, str, str]] = []
    total = 0
    for name, typ, desc in res.variables:
        row = (cap_head(name, VAR_NAME_CHARS), cap_head(typ, VAR_TYPE_CHARS), cap_head(desc, VAR_DESC_CHARS))
        size = sum(map(len, row))
        if total + size > cap:
            rows.append(("...", "", f"{len(res.variables) - len(rows)} more variables not shown"))
            break
        rows.append(row)
        total += size
    res.variables = rows


def cap_head(text: str, n: int) -> str:
    if len(text) <= n:
        return text
    return text[:n] + f"... [{len(text) - n} more chars]"


def cap_tail(text: str, n: int) -> str:
    if len(text) <= n:
        return text
    return f"[{len(text) - n} chars cut] ..." + text[-n:]
