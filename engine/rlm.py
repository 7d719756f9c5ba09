"""The RLM engine: string in, string out, over prompts of any size.

A root model never sees the prompt. The prompt is written once where a sandboxed Python REPL can read it (as
``context``); the root sees only its size and a short preview, writes code, and the loop runs each fenced code
block in the sandbox and returns the (truncated) output as the next message. Code may call a worker model
(``llm_query`` / ``llm_query_batched``) or a child RLM (``rlm_query``) on slices. The run ends only when executed
code calls ``FINAL(value)`` - never by parsing prose - or when a guardrail ends it, in which case the result
carries the finish reason and the best partial answer.

Usage::

    from engine.rlm import RLM
    rlm = RLM(root="qwen2.5-coder-1.5b", worker="qwen2.5-coder-0.5b", max_root_turns=8)
    c = rlm.completion(Path("book.txt"), "Who is the keeper of the lighthouse?")
    print(c.answer, c.finish_reason, c.trace_path)
"""

from __future__ import annotations

import ast
import hashlib
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine import prompts as P
from engine.backends import load_backend
from engine.backends.base import (
    Backend,
    BackendError,
    ContextOverflowError,
    Generation,
    Message,
    SamplingParams,
)
from engine.guardrails import Budget, CellCounter, GuardrailError, Limits, Usage, split_limits
from engine.log import get_logger, log
from engine.trace import TraceWriter, clip, default_trace_dir, new_id

_log = get_logger("rlm")

PromptSource = str | Path | Sequence[str]

DEFAULT_ROOT = "qwen2.5-coder-1.5b"
DEFAULT_WORKER = "qwen2.5-coder-0.5b"

# Finish reasons. "final" is the only one where the model itself ended the run.
FINAL = "final"
PARTIAL_REASONS = (
    "max_root_turns",
    "max_sub_calls",
    "max_tokens",
    "max_wall_s",
    "loop_detected",
    "no_code",
    "too_many_errors",
    "context_overflow",
    "backend_error",
)


# ----------------------------------------------------------------------------------------------------------------
# Public result types


@dataclass(frozen=True)
class Completion:
    """The result of :meth:`RLM.completion`."""

    answer: str
    finish_reason: str  # "final" when code called FINAL; otherwise the guardrail or failure that ended the run
    partial: bool  # True when the answer is a best effort after a limit, not a FINAL value
    usage_by_model: dict[str, Usage]
    usage_by_depth: dict[int, Usage]
    root_turns: int
    sub_calls: int
    elapsed_s: float
    overhead_s: float  # engine time before the first root model call (prompt setup, sandbox start)
    trace_id: str
    trace_path: str | None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.finish_reason in (FINAL, "direct")

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "finish_reason": self.finish_reason,
            "partial": self.partial,
            "usage_by_model": {k: vars(v) for k, v in self.usage_by_model.items()},
            "usage_by_depth": {str(k): vars(v) for k, v in self.usage_by_depth.items()},
            "root_turns": self.root_turns,
            "sub_calls": self.sub_calls,
            "elapsed_s": round(self.elapsed_s, 3),
            "overhead_s": round(self.overhead_s, 3),
            "trace_id": self.trace_id,
            "trace_path": self.trace_path,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


# ----------------------------------------------------------------------------------------------------------------
# The environment seam: the real one is the Wasm sandbox; tests may plug in others.


@dataclass(frozen=True)
class CellOutcome:
    """One executed cell, normalised from whatever the environment returns."""

    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # exception type and message (None when the cell succeeded)
    traceback: str = ""
    final_called: bool = False
    final_value: Any = None
    limit: str | None = None  # None | "cpu_time" | "memory" | "output"
    state_reset: bool = False
    duration_s: float = 0.0


@dataclass(frozen=True)
class HostCalls:
    """The host functions a cell may call; ``opts`` is an optional dict (e.g. ``{"max_tokens": 16}``)."""

    llm_query: Callable[[str, Any], str]
    llm_query_batched: Callable[[list[str], Any], list[str]]
    rlm_query: Callable[[str, Any], str]


class Environment(Protocol):
    meta: P.PromptMeta

    def run_cell(self, code: str) -> CellOutcome: ...

    def close(self) -> None: ...


EnvironmentFactory = Callable[[PromptSource, HostCalls, Limits, Path, Callable[[str], int]], Environment]


def _estimate_tokens(count: Callable[[str], int], chars: int, sample: str) -> int:
    """Tokens of the whole prompt from a counted sample: never tokenises 10M tokens up front."""
    if not sample:
        return 0
    ratio = count(sample) / max(len(sample), 1)
    return int(chars * ratio)


class SandboxEnvironment:
    """The real environment: the Wasm sandbox from ``wasm_sandbox`` over a prompt written once to ``workdir``."""

    def __init__(
        self,
        source: PromptSource,
        host: HostCalls,
        limits: Limits,
        workdir: Path,
        count_tokens: Callable[[str], int],
    ) -> None:
        import wasm_sandbox as ws  # imported lazily: the engine's unit tests need no Wasm runtime

        src: Any = list(source) if not isinstance(source, (str, Path)) else source
        self._prompt = ws.Prompt.create(src, workdir)
        m = self._prompt.meta
        preview = str(getattr(m, "preview", ""))[:400]
        chars = int(getattr(m, "chars", 0))
        self.meta = P.PromptMeta(
            chars=chars,
            tokens=_estimate_tokens(count_tokens, chars, preview),
            lines=int(getattr(m, "lines", 0)),
            n_documents=int(getattr(m, "n_documents", None) or 1),
            preview=preview,
        )
        hf = ws.HostFunctions(
            llm_query=host.llm_query, llm_query_batched=host.llm_query_batched, rlm_query=host.rlm_query
        )
        sl = ws.SandboxLimits(
            cpu_seconds=limits.cell_cpu_s,
            memory_bytes=limits.cell_memory_bytes,
            max_output_chars=max(limits.max_output_chars * 20, 100_000),
        )
        self._sb = ws.Sandbox(self._prompt, hf, sl)

    def run_cell(self, code: str) -> CellOutcome:
        r = self._sb.run_cell(code)
        final_called = bool(getattr(r, "final_called", False)) or getattr(r, "final", None) is not None
        return CellOutcome(
            stdout=str(getattr(r, "stdout", "") or ""),
            stderr=str(getattr(r, "stderr", "") or ""),
            error=(str(r.error) if getattr(r, "error", None) else None),
            traceback=str(getattr(r, "traceback", "") or ""),
            final_called=final_called,
            final_value=getattr(r, "final", None),
            limit=getattr(r, "limit", None),
            state_reset=bool(getattr(r, "state_reset", False)),
            duration_s=float(getattr(r, "duration_s", 0.0) or 0.0),
        )

    def close(self) -> None:
        close = getattr(self._sb, "close", None)
        if callable(close):
            close()
        pclose = getattr(self._prompt, "close", None)
        if callable(pclose):
            pclose()


# ----------------------------------------------------------------------------------------------------------------
# Helpers: code extraction, truncation, answer coercion

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_LANGS = {"", "python", "py", "python3", "repl"}


def extract_code(text: str) -> tuple[list[str], str]:
    """Fenced code blocks to run, and the reply cut after the last of them (drops invented outputs after it).

    An unclosed last fence counts (generation stops at "Output:"); blocks tagged as another language (``output``,
    ``text``) are never run.
    """
    blocks: list[str] = []
    end = 0
    for m in _FENCE.finditer(text):
        lang = m.group(1).lower()
        code = m.group(2).strip("\n")
        if lang in _CODE_LANGS and code.strip():
            blocks.append(code)
            end = m.end()
    kept = text[:end] if blocks else text
    if blocks and not kept.rstrip().endswith("```"):
        kept = kept.rstrip() + "\n```"
    return blocks, kept


def truncate_output(text: str, max_chars: int) -> str:
    """Head and tail of a long output, stating the true length, so the model knows what it did not see."""
    if len(text) <= max_chars:
        return text
    head = int(max_chars * 0.6)
    tail = max_chars - head
    omitted = len(text) - head - tail
    return (
        f"{text[:head]}\n[... {omitted:,} characters omitted: the output was {len(text):,} characters, only the "
        f"first {head:,} and last {tail:,} are shown. Print less (e.g. print(x[:300])) ...]\n{text[-tail:]}"
    )


def answer_text(value: Any) -> str:
    """FINAL's value as the answer string (tuples/lists/dicts rendered plainly)."""
    if value is None:
        return ""
    if isinstance(value, str):
        v = value.strip()
        if v.startswith(("[", "(")) and v.endswith(("]", ")")):
            # the guest records str(value): a small model's FINAL(["x"]) should still answer "x"
            try:
                parsed = ast.literal_eval(v)
            except (ValueError, SyntaxError):
                return v
            if isinstance(parsed, (list, tuple)) and all(isinstance(p, (str, int, float)) for p in parsed):
                return ", ".join(str(p).strip() for p in parsed)
        return v
    if isinstance(value, (list, tuple)):
        return ", ".join(answer_text(v) for v in value)
    return str(value).strip()


_FINAL_CALL = re.compile(r"FINAL\(\s*(.+?)\s*\)\s*$", re.DOTALL | re.MULTILINE)


def _answer_from_reply(text: str) -> str:
    """A partial answer from a free-text reply (only used after a limit; never ends a run)."""
    blocks, _ = extract_code(text)
    body = "\n".join(blocks) if blocks else text
    m = _FINAL_CALL.search(body)
    if m:
        try:
            return answer_text(ast.literal_eval(m.group(1)))
        except (ValueError, SyntaxError):
            return m.group(1).strip()
    return body.strip().strip("`").strip()


def _norm_code(code: str) -> str:
    lines = [ln.split("#", 1)[0].rstrip() for ln in code.strip().splitlines()]
    return hashlib.sha256("\n".join(ln for ln in lines if ln.strip()).encode()).hexdigest()


def _format_outcome(o: CellOutcome) -> str:
    parts = []
    if o.stdout:
        parts.append(o.stdout.rstrip("\n"))
    if o.stderr:
        parts.append(o.stderr.rstrip("\n"))
    if o.error:
        tb = o.traceback.strip().splitlines()
        # the last lines of a traceback carry the line and the message; the top is sandbox plumbing
        tb_tail = "\n".join(tb[-6:]) if tb else ""
        parts.append(f"{tb_tail}\n{o.error}" if tb_tail and o.error not in tb_tail else (tb_tail or o.error))
    if not parts:
        parts.append("(no output - use print() to see values)")
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------------------
# The engine


class RLM:
    """A Recursive Language Model: ``RLM(root=..., worker=..., **limits).completion(prompt, question=None)``.

    ``root`` and ``worker`` are Backends or model names (same object allowed). ``limits`` are fields of
    :class:`engine.guardrails.Limits`. ``environment`` builds the REPL (default: the Wasm sandbox). ``trace``:
    a directory or file path for the JSON-lines trace, ``False`` for none (default: ``~/.cache/outcore/traces``).
    ``on_event(event, fields)`` sees every trace event as it happens (live progress displays).
    """

    def __init__(
        self,
        root: Backend | str = DEFAULT_ROOT,
        worker: Backend | str | None = DEFAULT_WORKER,
        *,
        environment: EnvironmentFactory | None = None,
        trace: str | Path | bool = True,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        fallback_answer: bool = True,
        direct: bool = False,
        **limits: Any,
    ) -> None:
        self.limits, rest = split_limits(limits)
        if rest:
            raise TypeError(f"unknown RLM options: {', '.join(sorted(rest))}")
        self.root: Backend = load_backend(root) if isinstance(root, str) else root
        if worker is None:
            self.worker: Backend = self.root
        elif isinstance(worker, str):
            same = isinstance(root, str) and root == worker
            self.worker = self.root if same else load_backend(worker)
        else:
            self.worker = worker
        self.environment: EnvironmentFactory = environment or SandboxEnvironment
        self.trace = trace
        self.on_event = on_event
        self.fallback_answer = fallback_answer
        self.direct = direct

    def _trace_path(self, run_id: str) -> Path | None:
        if self.trace is False:
            return None
        if self.trace is True:
            return default_trace_dir() / f"{run_id}.jsonl"
        p = Path(self.trace)
        return p / f"{run_id}.jsonl" if p.is_dir() or not p.suffix else p

    def _direct_text(self, prompt: PromptSource) -> str | None:
        """The prompt's text when it fits comfortably (half the root's context) for a plain call, else None."""
        budget_chars = self.root.info.n_ctx * 2  # cheap upper bound before counting tokens
        if isinstance(prompt, Path):
            if prompt.stat().st_size > budget_chars * 4:
                return None
            text = prompt.read_text(encoding="utf-8", errors="replace")
        elif isinstance(prompt, str):
            text = prompt
        else:
            text = "\n\n".join(f"[document {i}]\n{d}" for i, d in enumerate(prompt))
        if len(text) > budget_chars * 4:
            return None
        need = self.root.count_tokens(text) + self.limits.root_max_tokens + 256
        return text if need <= self.root.info.n_ctx // 2 else None

    def completion(self, prompt: PromptSource, question: str | None = None) -> Completion:
        """Answer ``question`` about ``prompt`` (str text, a Path, or a list of documents).

        Without a question, the prompt itself is the task (drop-in for a plain LLM call).
        """
        budget = Budget(self.limits)
        run_id = new_id("run")
        path = self._trace_path(run_id)
        writer = TraceWriter(path)
        try:
            run = _Run(self, budget, writer, prompt, question, depth=0, parent=None, run_id=run_id)
            direct_text = self._direct_text(prompt) if self.direct else None
            if direct_text is not None:
                answer, reason, partial = run.execute_direct(direct_text)
            else:
                answer, reason, partial = run.execute()
        finally:
            writer.close()
        return Completion(
            answer=answer,
            finish_reason=reason,
            partial=partial,
            usage_by_model=dict(budget.usage_by_model),
            usage_by_depth=dict(budget.usage_by_depth),
            root_turns=budget.root_turns,
            sub_calls=budget.sub_calls,
            elapsed_s=budget.elapsed(),
            overhead_s=run.overhead_s,
            trace_id=run_id,
            trace_path=str(path) if path else None,
            timings=run.timings,
        )


class _Run:
    """One RLM invocation at one depth (the top-level run or a child made by ``rlm_query``)."""

    def __init__(
        self,
        rlm: RLM,
        budget: Budget,
        writer: TraceWriter,
        prompt: PromptSource,
        question: str | None,
        *,
        depth: int,
        parent: str | None,
        run_id: str | None = None,
    ) -> None:
        self.rlm = rlm
        self.budget = budget
        self.lim = budget.limits
        self.writer = writer
        self.prompt = prompt
        self.question = question.strip() if question and question.strip() else P.DIRECT_TASK
        self.depth = depth
        self.parent = parent
        self.id = run_id or new_id("run")
        self.cell_counter = CellCounter()
        self.current_parent: str = self.id  # trace parent for sub-calls: the cell being executed
        self.last_sub_result = ""
        self.last_output = ""
        self.overhead_s = 0.0
        self.timings: dict[str, float] = {"root_s": 0.0, "cells_s": 0.0, "sub_calls_s": 0.0}
        w = rlm.worker
        margin = 64
        self.worker_system_tokens = w.count_tokens(P.WORKER_SYSTEM)
        default_sub = w.info.n_ctx - self.lim.sub_max_tokens - self.worker_system_tokens - margin
        self.max_sub_tokens = self.lim.max_sub_prompt_tokens or max(default_sub, 64)

    # -- events ------------------------------------------------------------------------------------------------
    def emit(self, event: str, **fields: Any) -> None:
        self.writer.emit(event, **fields)
        if self.rlm.on_event is not None:
            try:
                self.rlm.on_event(event, fields)
            except Exception:  # a display bug must never end a run
                pass

    # -- host functions ----------------------------------------------------------------------------------------
    def _max_tokens(self, opts: Any) -> int:
        if isinstance(opts, dict) and isinstance(opts.get("max_tokens"), int):
            return max(1, min(int(opts["max_tokens"]), 2048))
        return self.lim.sub_max_tokens

    def _check_size(self, prompt: str, index: int | None = None) -> int:
        n = self.rlm.worker.count_tokens(prompt)
        if n > self.max_sub_tokens:
            which = "llm_query prompt" if index is None else f"llm_query_batched prompt #{index}"
            max_chars = int(self.max_sub_tokens * len(prompt) / max(n, 1))
            raise GuardrailError(
                "sub_prompt_too_long",
                f"{which} is {n:,} tokens ({len(prompt):,} characters) but the worker accepts at most "
                f"{self.max_sub_tokens:,} tokens (about {max_chars:,} characters). Split the text into smaller "
                f"chunks and use llm_query_batched, or search first and send only the matching part.",
            )
        return n

    def _check_has_text(self, prompt: str) -> None:
        """Refuse a sub-call that carries only the run's question: the worker cannot see ``context``.

        Observed with Qwen2.5-Coder-1.5B as root: ``llm_query_batched([question])`` without the found snippets,
        and the worker then invents an answer. The error tells the model exactly what to add.
        """
        if self.question == P.DIRECT_TASK:
            return
        norm_q = re.sub(r"\W+", " ", self.question.lower()).strip()
        norm_p = re.sub(r"\W+", " ", prompt.lower()).strip()
        if norm_q and norm_q in norm_p and len(norm_p) - len(norm_q) < 60:
            raise GuardrailError(
                "sub_prompt_without_text",
                "this llm_query prompt has only the question and no text: the helper model cannot see `context`. "
                "Add the text it needs, for example:\n"
                'answer = llm_query(question + " Text: " + " ".join(hits))',
            )

    def _emit_subcall_start(self, kind: str, n: int, model: str, chars: int, first_prompt: str) -> str:
        sid = new_id("sub")
        self.emit(
            "subcall_start",
            id=sid,
            parent=self.current_parent,
            run=self.id,
            depth=self.depth + 1,
            kind=kind,
            n=n,
            model=model,
            prompt_chars=chars,
            prompt_preview=clip(first_prompt, 300),
        )
        return sid

    def _worker_call(self, prompts: list[str], opts: Any, kind: str) -> list[Generation]:
        w = self.rlm.worker
        self.budget.check_tokens(w.info.name)
        sid = self._emit_subcall_start(kind, len(prompts), w.info.name, sum(len(p) for p in prompts), prompts[0])
        t0 = time.monotonic()
        params = SamplingParams(max_tokens=self._max_tokens(opts))
        try:
            gens = w.batch(P.WORKER_SYSTEM, prompts, params)
        except BackendError as e:
            self.emit(
                "subcall_end",
                id=sid,
                kind=kind,
                n=len(prompts),
                model=w.info.name,
                error=str(e),
                latency_s=round(time.monotonic() - t0, 3),
            )
            raise
        dt = time.monotonic() - t0
        self.timings["sub_calls_s"] += dt
        pt = sum(g.prompt_tokens for g in gens)
        ct = sum(g.completion_tokens for g in gens)
        cached = sum(g.cached_tokens for g in gens)
        self.budget.record(w.info.name, self.depth + 1, pt, ct, cached, dt, calls=len(gens))
        errors = [g.error for g in gens if g.error]
        self.emit(
            "subcall_end",
            id=sid,
            kind=kind,
            n=len(prompts),
            model=w.info.name,
            prompt_tokens=pt,
            completion_tokens=ct,
            cached_tokens=cached,
            latency_s=round(dt, 3),
            error="; ".join(errors)[:500] if errors else None,
            result_preview=clip(gens[0].text if gens else "", 300),
        )
        return gens

    def llm_query(self, prompt: Any, opts: Any = None) -> str:
        prompt = str(prompt)
        self._check_size(prompt)
        self._check_has_text(prompt)
        self.budget.take_sub_calls(1, self.cell_counter)
        g = self._worker_call([prompt], opts, "llm")[0]
        if g.error:
            raise RuntimeError(f"llm_query failed: {g.error}")
        text = g.text.strip()
        self.last_sub_result = text or self.last_sub_result
        return text

    def llm_query_batched(self, prompts: Any, opts: Any = None) -> list[str]:
        if isinstance(prompts, str):
            raise TypeError("llm_query_batched expects a list of prompt strings; for one prompt use llm_query")
        plist = [str(p) for p in prompts]
        if not plist:
            return []
        self.budget.check_batch_width(len(plist))  # before the per-prompt checks: the width error is the useful one
        for i, p in enumerate(plist):
            self._check_size(p, i)
            self._check_has_text(p)
        self.budget.take_sub_calls(len(plist), self.cell_counter, batch=True)
        gens = self._worker_call(plist, opts, "batch")
        out = [g.text.strip() if not g.error else f"[error: {g.error}]" for g in gens]
        if out and not gens[-1].error:
            self.last_sub_result = out[-1]
        return out

    def rlm_query(self, prompt: Any, opts: Any = None) -> str:
        prompt_s = str(prompt) if not isinstance(prompt, (list, tuple)) else None
        if self.depth + 1 > self.lim.max_depth:
            # deepest level: a plain worker call (the prompt must then fit the worker)
            return self.llm_query(prompt_s if prompt_s is not None else "\n\n".join(map(str, prompt)), opts)
        question = opts.get("question") if isinstance(opts, dict) else None
        self.budget.take_sub_calls(1, self.cell_counter)
        chars = len(prompt_s) if prompt_s is not None else sum(len(str(p)) for p in prompt)
        sid = self._emit_subcall_start("rlm", 1, self.rlm.root.info.name, chars, prompt_s or "")
        t0 = time.monotonic()
        src: PromptSource = prompt_s if prompt_s is not None else [str(p) for p in prompt]
        child = _Run(self.rlm, self.budget, self.writer, src, question, depth=self.depth + 1, parent=sid)
        answer, reason, partial = child.execute()
        self.emit(
            "subcall_end",
            id=sid,
            kind="rlm",
            n=1,
            model=self.rlm.root.info.name,
            latency_s=round(time.monotonic() - t0, 3),
            finish_reason=reason,
            error=None if reason == FINAL else f"child run ended with {reason}",
            result_preview=clip(answer, 300),
        )
        if self.budget.exhausted is not None:
            raise self.budget.exhausted
        self.last_sub_result = answer or self.last_sub_result
        return answer

    # -- the loop ----------------------------------------------------------------------------------------------
    def _emit_run_start(self, prompt_meta: dict[str, Any], **extra: Any) -> None:
        self.emit(
            "run_start",
            id=self.id,
            parent=self.parent,
            depth=self.depth,
            question=self.question,
            root=self.rlm.root.info.name,
            worker=self.rlm.worker.info.name,
            limits=self.lim.to_dict(),
            prompt_meta=prompt_meta,
            **extra,
        )

    def execute(self) -> tuple[str, str, bool]:
        t_start = time.monotonic()
        host = HostCalls(self.llm_query, self.llm_query_batched, self.rlm_query)
        workdir = Path(tempfile.mkdtemp(prefix="outcore-rlm-"))
        env: Environment | None = None
        session = f"{self.id}-root"
        try:
            try:
                env = self.rlm.environment(self.prompt, host, self.lim, workdir, self.rlm.root.count_tokens)
            except Exception as e:  # noqa: BLE001 - a broken sandbox ends the run with a reason, not a traceback
                self._emit_run_start({})
                return self._end(f"environment failed to start: {e}", "environment_error", True, t_start)
            meta = env.meta
            try:  # `question` in the REPL lets the model (and the worked example) pass it on without retyping
                env.run_cell(f"question = {self.question!r}")
            except Exception:  # noqa: BLE001 - a convenience only
                pass
            self._emit_run_start(
                {"chars": meta.chars, "tokens": meta.tokens, "lines": meta.lines, "n_documents": meta.n_documents}
            )
            max_sub_chars = max(200, int(self.max_sub_tokens * 3))
            messages = [
                Message("system", P.root_system(meta, max_sub_chars, self.lim.max_batch_width)),
                Message("user", P.root_first_user(self.question, meta)),
            ]
            self.overhead_s = time.monotonic() - t_start
            return self._loop(env, messages, session, t_start)
        finally:
            if env is not None:
                try:
                    env.close()
                except Exception:  # noqa: BLE001
                    pass
            try:
                self.rlm.root.end_session(session)
            except Exception:  # noqa: BLE001
                pass
            shutil.rmtree(workdir, ignore_errors=True)

    def execute_direct(self, text: str) -> tuple[str, str, bool]:
        """A prompt that fits the root's context: one plain call, no REPL (``RLM(direct=True)``)."""
        t_start = time.monotonic()
        root = self.rlm.root
        self._emit_run_start({"chars": len(text)}, mode="direct")
        if self.question == P.DIRECT_TASK:
            messages = [Message("user", text)]
        else:
            messages = [
                Message("system", P.WORKER_SYSTEM),
                Message("user", f"Text:\n{text}\n\nQuestion: {self.question}"),
            ]
        self.overhead_s = time.monotonic() - t_start
        try:
            self.budget.take_root_turn(0)
            gen = root.chat(messages, SamplingParams(max_tokens=self.lim.root_max_tokens))
        except (GuardrailError, BackendError) as e:
            return self._end(str(e), "backend_error", True, t_start)
        self.budget.record(
            root.info.name, self.depth, gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens, gen.latency_s
        )
        self.emit(
            "root_turn",
            id=new_id("turn"),
            parent=self.id,
            depth=self.depth,
            turn=1,
            model=root.info.name,
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens,
            cached_tokens=gen.cached_tokens,
            latency_s=round(gen.latency_s, 3),
            text=clip(gen.text, 4000),
            has_code=False,
        )
        return self._end(gen.text.strip(), "direct", False, t_start)

    def _end(self, answer: str, reason: str, partial: bool, t_start: float) -> tuple[str, str, bool]:
        self.emit(
            "run_end",
            id=self.id,
            depth=self.depth,
            finish_reason=reason,
            partial=partial,
            answer=clip(answer, 2000),
            elapsed_s=round(time.monotonic() - t_start, 3),
            budget=self.budget.snapshot(),
        )
        log(_log, "info", "rlm run end", run=self.id, depth=self.depth, finish_reason=reason)
        return answer, reason, partial

    def _root_turn(self, messages: list[Message], session: str, turn: int) -> Generation:
        root = self.rlm.root
        self.budget.check_tokens(root.info.name)
        params = SamplingParams(max_tokens=self.lim.root_max_tokens, stop=("\nOutput:", "```output"))
        t0 = time.monotonic()
        try:
            gen = root.chat(messages, params, session=session)
        except ContextOverflowError:
            # keep the system prompt, the question and the latest exchange; old outputs are dropped
            _compact(messages)
            gen = root.chat(messages, params, session=None)
        dt = time.monotonic() - t0
        self.timings["root_s"] += dt
        self.budget.record(root.info.name, self.depth, gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens, dt)
        return gen

    def _loop(self, env: Environment, messages: list[Message], session: str, t_start: float) -> tuple[str, str, bool]:
        turn = 0
        no_code = 0
        errors = 0
        repeats = 0
        seen_code: set[str] = set()
        seen_output: set[str] = set()
        last_reply = ""
        while True:
            try:
                self.budget.take_root_turn(turn)
                gen = self._root_turn(messages, session, turn)
            except GuardrailError as e:
                return self._finish_partial(messages, e.reason, t_start, session)
            except ContextOverflowError as e:
                log(_log, "warning", "root context overflow", error=str(e))
                return self._finish_partial(messages, "context_overflow", t_start, session, ask_model=False)
            except BackendError as e:
                log(_log, "error", "root backend error", error=str(e))
                return self._finish_partial(messages, "backend_error", t_start, session, ask_model=False)
            turn += 1
            blocks, kept = extract_code(gen.text)
            tid = new_id("turn")
            self.emit(
                "root_turn",
                id=tid,
                parent=self.id,
                depth=self.depth,
                turn=turn,
                model=self.rlm.root.info.name,
                prompt_tokens=gen.prompt_tokens,
                completion_tokens=gen.completion_tokens,
                cached_tokens=gen.cached_tokens,
                latency_s=round(gen.latency_s or 0.0, 3),
                text=clip(gen.text, 4000),
                has_code=bool(blocks),
            )
            if not blocks:
                no_code += 1
                last_reply = gen.text
                messages.append(Message("assistant", gen.text.strip() or "(empty reply)"))
                if no_code >= self.lim.max_no_code:
                    return self._finish_partial(messages, "no_code", t_start, session, candidate=last_reply)
                messages.append(Message("user", P.NUDGE_NO_CODE.format(question=self.question)))
                continue
            no_code = 0
            messages.append(Message("assistant", kept.strip()))

            outputs: list[str] = []
            outcome = CellOutcome()
            failed = False
            limit_hit: str | None = None
            reset = False
            code_key = _norm_code("\n".join(blocks))
            for code in blocks:
                self.cell_counter = CellCounter()
                cid = new_id("cell")
                self.current_parent = cid
                t0 = time.monotonic()
                try:
                    outcome = env.run_cell(code)
                except Exception as e:  # noqa: BLE001 - the environment itself broke: report, keep the run alive
                    outcome = CellOutcome(error=f"{type(e).__name__}: {e}")
                dt = time.monotonic() - t0
                self.timings["cells_s"] += dt
                text = _format_outcome(outcome)
                self.emit(
                    "cell",
                    id=cid,
                    parent=tid,
                    depth=self.depth,
                    turn=turn,
                    code=clip(code, 8000),
                    output=clip(text),
                    output_chars=len(text),
                    error=outcome.error,
                    limit=outcome.limit,
                    state_reset=outcome.state_reset,
                    final=outcome.final_called,
                    duration_s=round(outcome.duration_s or dt, 3),
                    sub_calls=self.cell_counter.sub_calls,
                )
                self.current_parent = self.id
                outputs.append(text)
                if outcome.error or outcome.limit:
                    failed = True
                    limit_hit = outcome.limit or limit_hit
                    reset = reset or outcome.state_reset
                if outcome.final_called or failed or self.budget.exhausted is not None:
                    break

            if outcome.final_called:
                ans = answer_text(outcome.final_value)
                if ans:
                    return self._end(ans, FINAL, False, t_start)
            if self.budget.exhausted is not None:
                return self._finish_partial(messages, self.budget.exhausted.reason, t_start, session)

            output = "\n".join(outputs)
            self.last_output = output if output.strip() and not failed else self.last_output
            hints = []
            out_key = hashlib.sha256(output.encode()).hexdigest()
            repeated = code_key in seen_code or (not failed and out_key in seen_output)
            seen_code.add(code_key)
            seen_output.add(out_key)
            if repeated:
                repeats += 1
                if repeats > self.lim.max_repeats:
                    return self._finish_partial(messages, "loop_detected", t_start, session)
                hints.append(P.HINT_REPEAT)
            if failed:
                errors += 1
                if errors >= self.lim.max_errors:
                    return self._finish_partial(messages, "too_many_errors", t_start, session)
                if limit_hit:
                    hints.append(
                        P.HINT_LIMIT.format(
                            limit=limit_hit.replace("_", " "),
                            reset=" The REPL state was reset: earlier variables are gone." if reset else "",
                        )
                    )
                else:
                    hints.append(P.HINT_ERROR)
            else:
                errors = 0
            if outcome.final_called:
                hints.append(P.HINT_FINAL_NONE)
            if not hints:
                hints.append(P.HINT_NEXT)
            messages.append(
                Message(
                    "user",
                    P.CELL_OUTPUT.format(
                        output=truncate_output(output, self.lim.max_output_chars),
                        question=self.question,
                        hint=" ".join(hints),
                    ),
                )
            )

    def _finish_partial(
        self,
        messages: list[Message],
        reason: str,
        t_start: float,
        session: str,
        *,
        candidate: str = "",
        ask_model: bool = True,
    ) -> tuple[str, str, bool]:
        """End without FINAL: ask the root once for a plain answer when budget allows, else use what we have."""
        answer = ""
        can_ask = (
            ask_model
            and self.rlm.fallback_answer
            and reason not in ("max_wall_s", "max_tokens")
            and self.budget.remaining_s() > 0
        )
        if can_ask:
            try:
                self.budget.check_tokens(self.rlm.root.info.name)
                msgs = [*messages]
                if msgs[-1].role == "user":
                    msgs[-1] = Message(
                        "user", msgs[-1].content + "\n\n" + P.FALLBACK_ANSWER.format(question=self.question)
                    )
                else:
                    msgs.append(Message("user", P.FALLBACK_ANSWER.format(question=self.question)))
                params = SamplingParams(max_tokens=min(96, self.lim.root_max_tokens), stop=("\nOutput:",))
                t0 = time.monotonic()
                gen = self.rlm.root.chat(msgs, params, session=session)
                dt = time.monotonic() - t0
                self.budget.record(
                    self.rlm.root.info.name, self.depth, gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens, dt
                )
                self.emit(
                    "root_turn",
                    id=new_id("turn"),
                    parent=self.id,
                    depth=self.depth,
                    turn="fallback",
                    model=self.rlm.root.info.name,
                    prompt_tokens=gen.prompt_tokens,
                    completion_tokens=gen.completion_tokens,
                    cached_tokens=gen.cached_tokens,
                    latency_s=round(dt, 3),
                    text=clip(gen.text, 2000),
                    has_code=False,
                )
                answer = _answer_from_reply(gen.text)
            except Exception as e:  # noqa: BLE001 - best effort only
                log(_log, "warning", "fallback answer failed", error=str(e))
        if not answer and candidate:
            answer = _answer_from_reply(candidate)
        if not answer:
            answer = self.last_sub_result or self.last_output.strip()[-2000:]
        return self._end(answer, reason, True, t_start)


def _compact(messages: list[Message]) -> None:
    """Shrink a conversation that overflowed the root's context: old cell outputs become a one-line note."""
    keep_tail = 2
    for i in range(2, max(2, len(messages) - keep_tail)):
        m = messages[i]
        if m.role == "user" and len(m.content) > 200:
            messages[i] = Message("user", m.content[:150] + "\n[old output removed to save context]")
