"""One run at one depth: its set-up, its root calls and its end (the top-level run, or a child of ``rlm_query``).

The set-up: the environment over the prompt (or the session's), ``question`` in the REPL, the task found inside a
prompt sent without a question (:mod:`engine.strategy.task`), the strategy (:mod:`engine.strategy`: plan mode,
terms, the first step) and the history. The turns are :class:`engine.loop.Loop`'s. The run ends with an answer only
when the finish rule accepts it (:mod:`engine.strategy.finish`), or when a guardrail, a cancel or a failure ends
it, in which case the best partial answer is returned with the reason.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import prompts as P
from engine import strategy
from engine.backends.base import BackendError, Generation, Message, SamplingParams
from engine.cancel import Cancelled, CancelToken
from engine.environment import Environment, HostCalls, PromptSource
from engine.guardrails import ROLE_CHILD_ROOT, ROLE_ROOT, Budget, GuardrailError, Limits, scaled_for
from engine.history import History
from engine.log import get_logger, log
from engine.loop import Loop
from engine.mapping import MapCalls
from engine.operators import operator_calls
from engine.result import DIRECT, RunEnd
from engine.subcalls import Binding, SubCalls, unavailable
from engine.trace import TraceWriter, clip, new_id
from wasm_sandbox.prompt import LONG_LINE_BYTES, PromptMeta

if TYPE_CHECKING:
    from engine.rlm import RLM, RLMSession

_log = get_logger("rlm")

EventSink = Callable[[str, dict[str, Any]], None]
TASK_END_CHARS = 8_000  # characters read at each end of a prompt to find a task stated inside it


class Run:
    """One RLM invocation at one depth. Children share the parent's budget, trace, cancel token and owner."""

    def __init__(
        self,
        rlm: RLM,
        budget: Budget,
        writer: TraceWriter,
        prompt: PromptSource | None,
        question: str | None,
        *,
        depth: int,
        parent: str | None,
        run_id: str,
        top_id: str,
        cancel: CancelToken,
        sinks: tuple[EventSink, ...] = (),
        session: RLMSession | None = None,
        timings: dict[str, float] | None = None,
    ) -> None:
        self.rlm = rlm
        self.budget = budget
        self.lim: Limits = budget.limits
        self.writer = writer
        self.prompt = prompt
        self.question = question.strip() if question and question.strip() else P.DIRECT_TASK
        self.depth = depth
        self.parent = parent
        self.id = run_id
        self.top_id = top_id
        self.owner = top_id  # fair scheduling in the backends is per top-level run
        self.cancel = cancel
        self.sinks = sinks
        self.session = session
        self.role = ROLE_ROOT if depth == 0 else ROLE_CHILD_ROOT
        self.last_output = ""
        self.overhead_s = 0.0
        # shared with child runs, so the top-level figures include them
        self.timings = timings if timings is not None else {"root_s": 0.0, "cells_s": 0.0, "sub_calls_s": 0.0}
        self.subs = SubCalls(self)
        self.maps = MapCalls(self.subs)
        self.notes = 0  # entries moved into the REPL's `notes` list by compaction
        self.evidence: list[str] = []  # what the cells printed: a stopped run's answer must come from here
        self.restored: list[str] = []  # built-in helpers a cell rebound (the sandbox put them back)
        self.found_task: strategy.TaskFound | None = None
        if question is None or not question.strip():
            self.found_task = _task_in(prompt)
            if self.found_task is not None:
                self.question = self.found_task.question

    # -- events ------------------------------------------------------------------------------------------------
    def emit(self, event: str, **fields: Any) -> None:
        fields.setdefault("depth", self.depth)
        fields["run"] = self.top_id
        fields["ts"] = round(time.time(), 4)
        self.writer.emit(event, **fields)
        for sink in self.sinks:
            try:
                sink(event, fields)
            except Exception:  # noqa: BLE001 - a display bug must never end a run
                pass

    def child(self, prompt: PromptSource, question: str | None, *, parent: str) -> Run:
        return Run(
            self.rlm,
            self.budget,
            self.writer,
            prompt,
            question,
            depth=self.depth + 1,
            parent=parent,
            run_id=new_id("run"),
            top_id=self.top_id,
            cancel=self.cancel,
            sinks=self.sinks,
            timings=self.timings,
        )

    def _emit_run_start(self, prompt_meta: dict[str, Any], **extra: Any) -> None:
        self.emit(
            "run_start",
            id=self.id,
            parent=self.parent,
            question=self.question,
            root=self.rlm.root.info.name,
            worker=self.rlm.worker.info.name,
            limits=self.lim.to_dict(),
            prompt_meta=prompt_meta,
            **extra,
        )

    def end(self, answer: str, reason: str, partial: bool, t_start: float, error: str | None = None) -> RunEnd:
        self.emit(
            "run_end",
            id=self.id,
            parent=self.parent,
            finish_reason=reason,
            partial=partial,
            error=error,
            answer=clip(answer, 2000),
            elapsed_s=round(time.monotonic() - t_start, 3),
            budget=self.budget.snapshot(),
        )
        log(_log, "info", "rlm run end", run=self.id, depth=self.depth, finish_reason=reason)
        return RunEnd(answer, reason, partial, error)

    # -- set-up ------------------------------------------------------------------------------------------------
    def _host_calls(self, binding: Binding) -> HostCalls:
        if not self.rlm.sub_calls:
            return HostCalls(unavailable("llm_query"), unavailable("llm_query_batched"), unavailable("rlm_query"))
        extra = {"llm_map": binding.llm_map, "classify": binding.classify, **operator_calls(binding)}
        return HostCalls(binding.llm_query, binding.llm_query_batched, binding.rlm_query, extra)

    def _scale_budget(self, items: int) -> None:
        """An aggregation over N entries: raise the defaults the caller did not set (see :func:`scaled_for`)."""
        update = scaled_for(self.lim, items)
        if update:
            self.lim = self.lim.model_copy(update=update)
            self.budget.limits = self.lim
            if "max_wall_s" in update:
                self.cancel.extend(update["max_wall_s"])
            log(_log, "info", "budget scaled to the prompt", run=self.id, items=items, **update)
            self.emit("budget_scaled", id=self.id, parent=self.parent, items=items, **update)

    def _strategy(self, env: Environment, first: bool) -> strategy.Strategy:
        """How this run is helped (see :mod:`engine.strategy`): the mode, the terms, the first step."""
        question = None if self.question == P.DIRECT_TASK else self.question
        plan = strategy.prepare(
            env.run_cell,
            question,
            env.meta,
            self.rlm.root.info,
            self.lim.plan_mode,
            first=first and self.depth == 0,
            sub_calls=self.rlm.sub_calls,
            inside=self.found_task is not None,
        )
        self.emit(
            "strategy",
            id=self.id,
            parent=self.parent,
            mode=plan.mode,
            shape=plan.mode,  # the name /ui shows ("strategy typed")
            operators=plan.operators,
            source=plan.source,
            terms=plan.terms,
            key_terms=plan.key_terms,
        )
        if plan.mode == strategy.TYPED and self.depth == 0 and _entries(env.meta):
            self._scale_budget(env.meta.lines)
        return plan

    def _system_prompt(self, plan: strategy.Strategy) -> str:
        max_sub_chars = max(200, int(self.subs.max_sub_tokens * 3))
        return strategy.system_prompt(
            plan.mode, max_sub_chars, self.lim.max_batch_width, sub_calls=self.rlm.sub_calls, operators=plan.operators
        )

    def _open_env(self, t_start: float) -> tuple[Environment | None, Path | None, RunEnd | None]:
        """The run's environment: the session's, or a new one over the prompt (and its workdir, to remove)."""
        sess = self.session
        if sess is not None and sess.env is not None:
            sess.binding.run = self
            return sess.env, None, None
        assert self.prompt is not None
        workdir: Path | None = Path(tempfile.mkdtemp(prefix="outcore-rlm-"))
        assert workdir is not None
        binding = sess.binding if sess is not None else Binding()
        binding.run = self
        try:
            env = self.rlm.environment(
                self.prompt,
                self._host_calls(binding),
                self.lim,
                workdir,
                self.rlm.root.count_tokens,
                binding,  # type: ignore[arg-type]  # is_set() of the current run's token
            )
        except Exception as e:  # noqa: BLE001 - a broken sandbox ends the run with a reason, not a traceback
            self._emit_run_start({})
            shutil.rmtree(workdir, ignore_errors=True)
            return (
                None,
                None,
                self.end("", "environment_error", True, t_start, error=f"the environment failed to start: {e}"),
            )
        if sess is not None:
            sess.attach(env, workdir)
            workdir = None  # the session owns it now
        return env, workdir, None

    def execute(self) -> RunEnd:
        t_start = time.monotonic()
        sess = self.session
        session_key = sess.key if sess is not None else f"{self.id}-root"
        keep = sess is not None
        env, workdir, failed = self._open_env(t_start)
        try:
            if failed is not None or env is None:
                return failed or self.end("", "environment_error", True, t_start)
            return self._converse(env, session_key, t_start)
        finally:
            if env is not None and not keep:
                try:
                    env.close()
                except Exception:  # noqa: BLE001
                    pass
            if not keep:
                try:
                    self.rlm.root.end_session(session_key)
                except Exception:  # noqa: BLE001
                    pass
            if workdir is not None and not keep:
                shutil.rmtree(workdir, ignore_errors=True)

    def _converse(self, env: Environment, session_key: str, t_start: float) -> RunEnd:
        """The run proper: the question in the REPL, the strategy, the history, the loop."""
        sess = self.session
        meta = env.meta
        try:  # `question` in the REPL lets the model (and the worked examples) pass it on without retyping
            env.run_cell(f"question = {self.question!r}\nif 'notes' not in globals(): notes = []")
        except Exception:  # noqa: BLE001 - a convenience only
            pass
        n_docs = meta.n_documents or 1
        self._emit_run_start({"chars": meta.chars, "tokens": meta.tokens, "lines": meta.lines, "n_documents": n_docs})
        if self.found_task is not None:
            where, q = self.found_task.where, self.found_task.question
            self.emit("task_found", id=self.id, parent=self.parent, where=where, question=clip(q, 2000))
        continuing = sess is not None and sess.history is not None
        plan = self._strategy(env, first=not continuing)
        self.overhead_s = time.monotonic() - t_start  # engine work before the first root model call
        first = strategy.first_user(
            self.question, meta, stepped=plan.step is not None, source=plan.source, absent=plan.absent
        )
        if sess is not None and sess.history is not None:
            hist = sess.history
            hist.append("user", first)
        else:
            hist = History([Message("system", self._system_prompt(plan)), Message("user", first)])
            if sess is not None:
                sess.history = hist
        end = Loop(self, env, hist, session_key, t_start, plan).execute()
        if sess is not None:
            hist.append("assistant", f"FINAL({end.answer!r})" if end.answer else "(no answer)")
        return end

    def execute_direct(self, text: str) -> RunEnd:
        """A prompt that fits the root's context: one plain call, no REPL (``RLM(direct=True)``)."""
        t_start = time.monotonic()
        self._emit_run_start({"chars": len(text)}, mode="direct")
        if self.question == P.DIRECT_TASK:
            messages = [Message("user", text)]
        else:
            messages = [
                Message("system", P.WORKER_SYSTEM),
                Message("user", f"Text:\n{text}\n\nQuestion: {self.question}"),
            ]
        self.overhead_s = time.monotonic() - t_start
        tid = new_id("turn")
        try:
            self.budget.take_root_turn(0)
            self.emit("root_turn_start", id=tid, parent=self.id, turn=1, model=self.rlm.root.info.name)
            gen = self.chat(messages, self.root_params(()), None)
        except GuardrailError as e:
            return self.end("", e.reason, True, t_start)
        except Cancelled as e:
            return self.end("", e.reason, True, t_start)
        except BackendError as e:
            return self.end("", "backend_error", True, t_start, error=str(e))
        self.emit_turn(tid, 1, gen, has_code=False)
        return self.end(gen.text.strip(), DIRECT, gen.finish_reason == "length", t_start)

    # -- the root ----------------------------------------------------------------------------------------------
    def root_params(
        self, stop: tuple[str, ...], max_tokens: int | None = None, grammar: str | None = None
    ) -> SamplingParams:
        lim = self.lim
        return SamplingParams(
            max_tokens=max_tokens or lim.root_max_tokens,
            temperature=lim.root_temperature,
            top_p=lim.root_top_p,
            seed=lim.root_seed,
            stop=stop,
            grammar=grammar,
        )

    def chat(self, messages: list[Message], params: SamplingParams, session: str | None) -> Generation:
        root = self.rlm.root
        self.budget.check_tokens(root.info.name)
        t0 = time.monotonic()
        gen = root.chat(messages, params, session=session, cancel=self.cancel, owner=self.owner)
        dt = time.monotonic() - t0
        self.timings["root_s"] += dt
        self.budget.record(
            root.info.name, self.role, self.depth, gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens, dt
        )
        return gen

    def emit_turn(self, tid: str, turn: int | str, gen: Generation, *, has_code: bool) -> None:
        self.emit(
            "root_turn",
            id=tid,
            parent=self.id,
            turn=turn,
            model=self.rlm.root.info.name,
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens,
            cached_tokens=gen.cached_tokens,
            latency_s=round(gen.latency_s or 0.0, 3),
            finish_reason=gen.finish_reason,
            text=clip(gen.text, 4000),
            has_code=has_code,
        )

    def compact(self, env: Environment, hist: History) -> None:
        """Move the oldest outputs of the history into the REPL's ``notes`` list."""
        moved = hist.compact(self.notes)
        if not moved:
            return
        self.notes += len(moved)
        try:
            env.run_cell(f"notes.extend({moved!r})")
        except Exception:  # noqa: BLE001 - the history is compacted either way
            pass
        log(_log, "info", "root history compacted", run=self.id, moved=len(moved))


def _entries(meta: PromptMeta) -> bool:
    """Whether the text is a list of one-line entries (log lines, tickets, records): at least 30 lines, almost
    none over :data:`~wasm_sandbox.prompt.LONG_LINE_BYTES`. A run over them may label each one, so its default
    budgets grow with their number (:func:`engine.guardrails.scaled_for`); the budgets are caps, not spent."""
    return meta.lines >= 30 and meta.long_lines * 20 <= meta.lines and meta.long_lines * LONG_LINE_BYTES < meta.chars


def _task_in(prompt: PromptSource | None) -> strategy.TaskFound | None:
    """The task stated inside a prompt sent without a question (see :mod:`engine.strategy.task`)."""
    if prompt is None:
        return None
    if isinstance(prompt, Path):
        size = prompt.stat().st_size
        with open(prompt, "rb") as f:
            head = f.read(TASK_END_CHARS).decode("utf-8", errors="ignore")
            f.seek(max(0, size - TASK_END_CHARS))
            tail = f.read().decode("utf-8", errors="ignore")
        return strategy.find_task(head, tail, size)
    if isinstance(prompt, str):
        return strategy.find_task(prompt[:TASK_END_CHARS], prompt[-TASK_END_CHARS:], len(prompt))
    docs = [str(d) for d in prompt]
    if not docs:
        return None
    total = sum(len(d) for d in docs)
    return strategy.find_task(docs[0][:TASK_END_CHARS], docs[-1][-TASK_END_CHARS:], total)
