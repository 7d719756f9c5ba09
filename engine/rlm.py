"""The RLM facade: string in, string out, over prompts of any size; one object hosts many concurrent runs.

A root model never sees the prompt. The prompt is written once where a sandboxed Python REPL can read it (as
``context``); the root sees only its size and a short preview, writes code, and the loop (:mod:`engine.run`) runs
each fenced code block in the sandbox and returns the (truncated) output as the next message. Code may call a
worker model (``llm_query`` / ``llm_query_batched``) or a child RLM (``rlm_query``) on slices.

Why one ``RLM`` for many calls: loading a model takes seconds and gigabytes, so a service loads root and worker
once and every :meth:`RLM.completion` (from any thread) shares them; the backends batch concurrent runs' requests
into the same decode steps, fairly per run. Each call has its own run id, limits, events, cancel token and budget.

Usage::

    from engine import RLM
    with RLM(root="qwen2.5-coder-1.5b", worker="qwen2.5-coder-0.5b", max_root_turns=8) as rlm:
        c = rlm.completion(Path("book.txt"), "Who is the keeper of the lighthouse?")
        print(c.answer, c.finish_reason, c.usage_by_role, c.trace_path)
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine import strategy
from engine.backends import load_backend
from engine.backends.base import Backend, BackendError
from engine.cancel import CancelToken
from engine.environment import Environment, EnvironmentFactory, PromptSource, SandboxEnvironment
from engine.guardrails import Budget, Limits, split_limits
from engine.history import History
from engine.inputs import check_prompt, check_question
from engine.result import Completion, RunEnd
from engine.run import EventSink, Run
from engine.subcalls import Binding
from engine.trace import TraceWriter, default_trace_dir, new_id

DEFAULT_ROOT = "qwen2.5-coder-1.5b"
# One loaded model in both roles: as the worker on 12 HotpotQA questions (BM25 top 4 of 100 pages) the 1.5B scored
# 41.7 token F1 and the 0.5B 19.4; the 0.5B labelled tickets at chance level (the small-roots issue).
DEFAULT_WORKER = DEFAULT_ROOT


class ContextWindowTooSmallError(BackendError):
    """The root model's context window cannot hold the system prompt and one reply; no run could succeed."""


class RLMClosedError(BackendError):
    """The RLM (and the backends it loaded) was closed."""


class RLMSession:
    """A multi-turn conversation: the REPL state and the root's history survive from one completion to the next.

    The first completion fixes the context; later ones may pass ``prompt=None`` (or the same prompt). One
    completion at a time per session. Close it (or use ``with``) to free the sandbox and the root's KV sequence.
    """

    def __init__(self, rlm: RLM) -> None:
        self.rlm = rlm
        self.key = new_id("session")
        self.env: Environment | None = None
        self.history: History | None = None
        self.binding = Binding()
        self.lock = threading.Lock()
        self.turns = 0
        self._workdir: Path | None = None
        self.closed = False

    def attach(self, env: Environment, workdir: Path) -> None:
        self.env, self._workdir = env, workdir

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.env is not None:
                try:
                    self.env.close()
                except Exception:  # noqa: BLE001
                    pass
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
            try:
                self.rlm.root.end_session(self.key)
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> RLMSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RLM:
    """A Recursive Language Model: ``RLM(root=..., worker=..., **limits).completion(prompt, question=None)``.

    ``root`` and ``worker`` are Backends or model specs (``load_backend``); the same name loads one model for
    both. ``root_options`` / ``worker_options`` are backend settings (``LlamaConfig`` fields such as ``n_ctx``,
    ``n_gpu_layers``, ``n_threads``, ``n_parallel``) for models loaded here. ``limits`` are fields of
    :class:`~engine.guardrails.Limits`, the defaults of every call. ``environment`` builds the REPL (default: the
    Wasm sandbox). ``trace``: a directory or file path for JSON-lines traces, ``False`` for none (default:
    ``~/.cache/outcore/traces``). ``on_event(event, fields)`` sees every event of every run. ``sub_calls=False``
    runs the REPL without ``llm_query``/``rlm_query`` (the paper's ablation).
    """

    def __init__(
        self,
        root: Backend | str = DEFAULT_ROOT,
        worker: Backend | str | None = DEFAULT_WORKER,
        *,
        root_options: Mapping[str, Any] | None = None,
        worker_options: Mapping[str, Any] | None = None,
        environment: EnvironmentFactory | None = None,
        trace: str | Path | bool = True,
        on_event: EventSink | None = None,
        fallback_answer: bool = True,
        direct: bool = False,
        sub_calls: bool = True,
        **limits: Any,
    ) -> None:
        self.limits, rest = split_limits(limits)
        if rest:
            raise TypeError(f"unknown RLM options: {', '.join(sorted(rest))}")
        # the state close() needs comes first: a model that fails to load closes what was loaded before it
        self._closed = False
        self._lock = threading.Lock()
        self._active: dict[str, CancelToken] = {}
        self._owned: list[Backend] = []
        self.root: Backend = self._load(root, root_options)
        if isinstance(root, str):
            self._check_root_fits(sub_calls)
        if worker is None or (
            isinstance(worker, str) and isinstance(root, str) and worker == root and not worker_options
        ):
            self.worker: Backend = self.root
        else:
            self.worker = self._load(worker, worker_options)
        self.environment: EnvironmentFactory = environment or SandboxEnvironment
        self.trace = trace
        self.on_event = on_event
        self.fallback_answer = fallback_answer
        self.direct = direct
        self.sub_calls = sub_calls

    def _load(self, spec: Backend | str, options: Mapping[str, Any] | None) -> Backend:
        if not isinstance(spec, str):
            return spec
        try:
            b = load_backend(spec, **dict(options or {}))
        except BaseException:
            self.close()
            raise
        self._owned.append(b)
        return b

    def _check_root_fits(self, sub_calls: bool) -> None:
        """Refuse at load a root whose context cannot hold its system prompt and one reply: every run would end
        in ``context_overflow`` after the first prefill (32 s for ``--n-ctx 10`` on a loaded machine). The
        shortest system prompt of any plan mode is the bar, so only configurations that cannot work are refused."""
        n_ctx = self.root.info.n_ctx
        sub_chars = max(200, (self.limits.max_sub_prompt_tokens or 64) * 3)
        shortest = min(
            self.root.count_tokens(
                strategy.system_prompt(mode, sub_chars, self.limits.max_batch_width, sub_calls=sub_calls, operators=ops)
            )
            for mode, ops in ((strategy.CODE, False), (strategy.TYPED, True))
        )
        need = shortest + self.limits.root_max_tokens
        if need > n_ctx:
            self.close()
            raise ContextWindowTooSmallError(
                f"the root model's context window ({n_ctx:,} tokens) cannot hold its system prompt and one reply "
                f"({need:,} tokens with root_max_tokens={self.limits.root_max_tokens}); use --n-ctx {need + 512} "
                "or more"
            )

    # -- lifecycle ---------------------------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        """False once closed or when a backend reports itself unusable (e.g. its decode thread died)."""
        if self._closed:
            return False
        return all(
            bool(getattr(b, "healthy", True)) for b in {id(self.root): self.root, id(self.worker): self.worker}.values()
        )

    @property
    def active_runs(self) -> list[str]:
        with self._lock:
            return list(self._active)

    def cancel(self, run_id: str) -> bool:
        """Cancel a running top-level run by id; False when no such run is active."""
        with self._lock:
            tok = self._active.get(run_id)
        if tok is None:
            return False
        tok.cancel()
        return True

    def close(self) -> None:
        """Cancel running calls and close the backends this RLM loaded (backends passed in stay open)."""
        self._closed = True
        with self._lock:
            tokens = list(self._active.values())
        for tok in tokens:
            tok.cancel()
        owned, self._owned = self._owned, []
        for b in owned:
            try:
                b.close()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> RLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def session(self) -> RLMSession:
        self._check_open()
        return RLMSession(self)

    def _check_open(self) -> None:
        if self._closed:
            raise RLMClosedError("this RLM is closed; create a new one")

    # -- calls -------------------------------------------------------------------------------------------------
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

    def completion(
        self,
        prompt: PromptSource | None,
        question: str | None = None,
        *,
        run_id: str | None = None,
        on_event: EventSink | None = None,
        cancel: CancelToken | None = None,
        limits: Limits | Mapping[str, Any] | None = None,
        session: RLMSession | None = None,
    ) -> Completion:
        """Answer ``question`` about ``prompt`` (str text, a Path, or a list of documents).

        Without a question, the prompt itself is the task (drop-in for a plain LLM call). ``run_id`` names the run
        (a server returns it before the run ends); ``on_event`` gets this run's events only; ``cancel`` stops it
        (finish reason ``cancelled``, best partial answer); ``limits`` override the RLM's limits for this call.
        Raises :class:`~engine.inputs.InvalidPromptError` for an empty, binary or non-UTF-8 prompt and
        ``pydantic.ValidationError`` (a ``ValueError``) for invalid limits, before any model runs.
        """
        self._check_open()
        lim = self.limits.merged(dict(limits) if isinstance(limits, Mapping) else limits)
        if session is not None and session.env is not None:
            if session.closed:
                raise ValueError("this session is closed")
        else:
            if prompt is None:
                raise ValueError("a prompt is required (only a later call of a session may omit it)")
            check_prompt(prompt)
        check_question(question)
        rid = run_id or new_id("run")
        path = self._trace_path(rid)
        writer = TraceWriter(path)  # a trace that cannot be created is refused before the run is registered
        with self._lock:
            if rid in self._active:
                writer.close()
                raise ValueError(f"a run with id {rid!r} is already running")
            token = CancelToken(deadline_s=lim.max_wall_s)
            self._active[rid] = token
        unlink = cancel.on_cancel(lambda: token.cancel("cancelled")) if cancel is not None else None
        budget = Budget(lim, cancel=token)
        sinks = tuple(s for s in (self.on_event, on_event) if s is not None)
        run = Run(
            self,
            budget,
            writer,
            prompt,
            question,
            depth=0,
            parent=None,
            run_id=rid,
            top_id=rid,
            cancel=token,
            sinks=sinks,
            session=session,
        )
        try:
            if session is not None:
                with session.lock:
                    session.turns += 1
                    end = run.execute()
            else:
                direct_text = self._direct_text(prompt) if self.direct and prompt is not None else None
                end = run.execute_direct(direct_text) if direct_text is not None else run.execute()
        finally:
            writer.close()
            token.close()
            if unlink is not None:
                unlink()
            with self._lock:
                self._active.pop(rid, None)
        return self._completion(end, run, budget, path)

    @staticmethod
    def _completion(end: RunEnd, run: Run, budget: Budget, path: Path | None) -> Completion:
        return Completion(
            answer=end.answer,
            finish_reason=end.finish_reason,
            partial=end.partial,
            error=end.error,
            run_id=run.id,
            usage_by_role=dict(budget.usage_by_role),
            usage_by_depth=dict(budget.usage_by_depth),
            root_turns=budget.root_turns,
            sub_calls=budget.sub_calls,
            sub_calls_by_kind=dict(budget.sub_calls_by_kind),
            cells=budget.cells,
            failed_cells=budget.failed_cells,
            max_depth_reached=budget.max_depth_reached,
            elapsed_s=budget.elapsed(),
            overhead_s=run.overhead_s,
            trace_path=str(path) if path else None,
            timings=run.timings,
        )
