"""One run at one depth: the root loop, turn by turn (the top-level run, or a child made by ``rlm_query``).

A turn is: draw a root turn from the budget, compact the history if it nears the root's window, ask the root
(with the run's session, cancel token and owner), run each fenced code block in the environment, and answer with
the output plus a hint. The run ends only when executed code calls ``FINAL`` with a value, or when a guardrail,
a cancel or a failure ends it, in which case the best partial answer is returned with the reason.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import prompts as P
from engine.backends.base import BackendError, ContextOverflowError, Generation, Message, SamplingParams
from engine.cancel import Cancelled, CancelToken
from engine.environment import Environment, HostCalls, PromptSource
from engine.guardrails import ROLE_CHILD_ROOT, ROLE_ROOT, Budget, CellCounter, GuardrailError, Limits, scaled_for
from engine.history import History
from engine.log import get_logger, log
from engine.loopguard import LoopGuard
from engine.mapping import MapCalls
from engine.operators import operator_calls
from engine.plans import PlannedStep, is_list, plan_aggregate, plan_lookup, plan_retrieval
from engine.replies import answer_text, extract_code, format_outcome, truncate_output
from engine.rescue import partial_answer
from engine.result import DIRECT, FINAL, RunEnd
from engine.strategies import AGGREGATE, LOOKUP, MULTIHOP, REPLY_GRAMMAR, Shape, choose_shape, supports_grammar
from engine.subcalls import Binding, SubCalls, unavailable
from engine.trace import TraceWriter, clip, new_id
from wasm_sandbox import CellResult

if TYPE_CHECKING:
    from engine.rlm import RLM, RLMSession

_log = get_logger("rlm")

EventSink = Callable[[str, dict[str, Any]], None]
# header lines of a prompt that concatenates source files (the styles files() recognises)
FILE_HEADERS = r"(?m)^(?:#{1,3} ?[Ff]ile: \S|==> \S.* <==$|<file path=|--- \S+\.\w+ ---$)"
EVIDENCE_CHARS = 4000  # per cell output kept as evidence for a stopped run's answer


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
        self.shape: Shape | None = None
        self.auto_stepped = False

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

    def _end(self, answer: str, reason: str, partial: bool, t_start: float, error: str | None = None) -> RunEnd:
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

    def _choose_shape(self, env: Environment) -> Shape | None:
        """Which worked example fits (see :mod:`engine.strategies`); scales the budgets of a run over many items."""
        if not self.rlm.sub_calls:
            return None
        try:  # a native search on the host's mmap: cheap on any size (files() would decode the whole text)
            r = env.run_cell(f"len(search({FILE_HEADERS!r}, max_hits=2))")
            n_files = int(r.display) if r.display and r.display.isdigit() else 0
        except Exception:  # noqa: BLE001 - an environment without the helper: no files
            n_files = 0
        shape = choose_shape(self, n_files, is_list(env.meta))
        if shape.key == "aggregate" and self.depth == 0:
            self._scale_budget(env.meta.lines)
        self.emit("strategy", id=self.id, parent=self.parent, shape=shape.key, n_files=n_files)
        return shape

    def _plan(self, shape: Shape | None, meta: P.PromptMeta) -> PlannedStep | None:
        """The first step the engine runs for the root (see :mod:`engine.plans`).

        Only with a decided shape: a root that cannot be held to a grammar (a scripted test model) gets no shape
        call, so its lookup example is a default, not a verdict. A child run plans nothing.
        """
        root = self.rlm.root
        if self.depth > 0 or shape is None or self.question == P.DIRECT_TASK or not supports_grammar(root):
            return None
        if shape is AGGREGATE:
            return plan_aggregate(self, meta)
        if shape is LOOKUP:
            return plan_lookup(meta)
        if shape is MULTIHOP:
            return plan_retrieval(meta)
        return None

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

    def _system_prompt(self) -> str:
        max_sub_chars = max(200, int(self.subs.max_sub_tokens * 3))
        return P.root_system(max_sub_chars, self.lim.max_batch_width, sub_calls=self.rlm.sub_calls)

    def execute(self) -> RunEnd:
        t_start = time.monotonic()
        sess = self.session
        env: Environment | None = sess.env if sess is not None else None
        workdir: Path | None = None
        session_key = sess.key if sess is not None else f"{self.id}-root"
        keep = sess is not None
        try:
            if env is None:
                assert self.prompt is not None
                workdir = Path(tempfile.mkdtemp(prefix="outcore-rlm-"))
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
                    msg = f"the environment failed to start: {e}"
                    return self._end("", "environment_error", True, t_start, error=msg)
                if sess is not None:
                    sess.attach(env, workdir)
                    workdir = None  # the session owns it now
            elif sess is not None:
                sess.binding.run = self
            meta = env.meta
            try:  # `question` in the REPL lets the model (and the worked example) pass it on without retyping
                env.run_cell(f"question = {self.question!r}\nif 'notes' not in globals(): notes = []")
            except Exception:  # noqa: BLE001 - a convenience only
                pass
            self._emit_run_start(
                {"chars": meta.chars, "tokens": meta.tokens, "lines": meta.lines, "n_documents": meta.n_documents}
            )
            self.overhead_s = time.monotonic() - t_start  # engine work before the first root model call
            shape = self.shape = self._choose_shape(env)
            plan = self._plan(shape, meta)
            first = P.root_first_user(self.question, meta, shape, plan.example if plan else "", not plan)
            if sess is not None and sess.history is not None:
                hist = sess.history
                hist.append("user", first)
            else:
                hist = History([Message("system", self._system_prompt()), Message("user", first)])
                if sess is not None:
                    sess.history = hist
            end = self._loop(env, hist, session_key, t_start, plan)
            if sess is not None:
                hist.append("assistant", f"FINAL({end.answer!r})" if end.answer else "(no answer)")
            return end
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
            return self._end("", e.reason, True, t_start)
        except Cancelled as e:
            return self._end("", e.reason, True, t_start)
        except BackendError as e:
            return self._end("", "backend_error", True, t_start, error=str(e))
        self.emit_turn(tid, 1, gen, has_code=False)
        return self._end(gen.text.strip(), DIRECT, gen.finish_reason == "length", t_start)

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

    def _compact(self, env: Environment, hist: History) -> None:
        moved = hist.compact(self.notes)
        if not moved:
            return
        self.notes += len(moved)
        try:
            env.run_cell(f"notes.extend({moved!r})")
        except Exception:  # noqa: BLE001 - the history is compacted either way
            pass
        log(_log, "info", "root history compacted", run=self.id, moved=len(moved))

    def _root_turn(self, env: Environment, hist: History, session: str) -> Generation:
        root = self.rlm.root
        code_only = self.lim.root_code_only and supports_grammar(root)
        params = self.root_params(("\nOutput:", "```output"), grammar=REPLY_GRAMMAR if code_only else None)
        if hist.over(root.count_tokens, root.info.n_ctx, params.max_tokens):
            self._compact(env, hist)
        try:
            return self.chat(hist.messages, params, session)
        except ContextOverflowError:
            self._compact(env, hist)
            return self.chat(hist.messages, params, session)

    # -- the loop ----------------------------------------------------------------------------------------------
    def _run_cells(
        self, env: Environment, blocks: list[str], tid: str, turn: int
    ) -> tuple[list[str], CellResult, bool]:
        outputs: list[str] = []
        outcome = CellResult()
        failed = False
        for code in blocks:
            self.subs.cell_counter = CellCounter()
            cid = new_id("cell")
            self.subs.current_parent = cid
            self.emit("cell_start", id=cid, parent=tid, turn=turn, code=clip(code, 8000))
            t0 = time.monotonic()
            try:
                outcome = env.run_cell(code)
            except Exception as e:  # noqa: BLE001 - the environment itself broke: report, keep the run alive
                outcome = CellResult(error=f"{type(e).__name__}: {e}")
            dt = time.monotonic() - t0
            self.timings["cells_s"] += dt
            text = format_outcome(outcome)
            cell_failed = bool(outcome.error or outcome.limit)
            self.budget.record_cell(cell_failed)
            self.emit(
                "cell",
                id=cid,
                parent=tid,
                turn=turn,
                output=clip(text),
                output_chars=len(text),
                error=outcome.error,
                limit=outcome.limit,
                state_reset=outcome.state_reset,
                final=outcome.final is not None,
                duration_s=round(outcome.duration_s or dt, 3),
                sub_calls=self.subs.cell_counter.sub_calls,
            )
            self.subs.current_parent = self.id
            outputs.append(text)
            self.restored.extend(n for n in outcome.restored_names if n not in self.restored)
            failed = failed or cell_failed
            if outcome.final is not None or cell_failed or self.budget.exhausted is not None:
                break
            if self.budget.stop_reason() is not None:
                break
        return outputs, outcome, failed

    def _loop(self, env: Environment, hist: History, session: str, t_start: float, plan: PlannedStep | None) -> RunEnd:
        """Root turns and cells until FINAL or a stop; ``plan`` (see :mod:`engine.plans`) runs first, as the root's."""
        lim = self.lim
        guard = LoopGuard(lim.max_no_code, lim.max_errors, lim.max_repeats)
        turn = 0
        last_reply = ""
        pending, plan_answer = plan, ""  # the planned step before it runs; what it printed after
        while True:
            stop = self.budget.stop_reason()
            if stop is not None:
                return self._finish_partial(hist, stop, t_start, session)
            planned, pending = pending, None
            if planned is not None:
                tid = self.id
                self.emit("planned_step", id=new_id("step"), parent=self.id, setup=planned.setup, code=planned.code)
                blocks = [f"{planned.setup}\n{planned.code}"]
                kept, stepped = f"```python\n{planned.code}\n```", None
            else:
                try:
                    self.budget.take_root_turn(turn)
                except GuardrailError as e:
                    return self._finish_partial(hist, e.reason, t_start, session)
                turn += 1
                tid = new_id("turn")
                self.emit("root_turn_start", id=tid, parent=self.id, turn=turn, model=self.rlm.root.info.name)
                try:
                    gen = self._root_turn(env, hist, session)
                except GuardrailError as e:
                    return self._finish_partial(hist, e.reason, t_start, session)
                except Cancelled as e:
                    return self._finish_partial(hist, e.reason, t_start, session)
                except ContextOverflowError as e:
                    log(_log, "warning", "root context overflow", error=str(e))
                    return self._finish_partial(hist, "context_overflow", t_start, session, error=str(e))
                except BackendError as e:
                    log(_log, "error", "root backend error", error=str(e))
                    return self._finish_partial(hist, "backend_error", t_start, session, error=str(e))
                blocks, kept = extract_code(gen.text)
                cut = gen.finish_reason == "length"
                self.emit_turn(tid, turn, gen, has_code=bool(blocks) and not cut)
                if cut or not blocks:
                    last_reply = gen.text
                    hist.append("assistant", gen.text.strip() or "(empty reply)")
                    if guard.reply_without_code():
                        return self._finish_partial(hist, "no_code", t_start, session, candidate=last_reply)
                    hint = P.HINT_CUT.format(max_tokens=lim.root_max_tokens) if cut else P.NUDGE_NO_CODE
                    hist.append("user", hint.format(question=self.question))
                    continue
                guard.reply_with_code()
                if plan is not None and _copies(plan, blocks):
                    hist.append("assistant", kept.strip())
                    if plan.stop_on_repeat and plan_answer:  # it accepts the step's answer: no next step of its own
                        self.emit("plan_accepted", id=new_id("step"), parent=self.id, answer=clip(plan_answer))
                        return self._end(plan_answer, FINAL, False, t_start)
                    if plan.stop_on_repeat or (guard.cell(plan.code, plan_answer, False) and guard.looping):
                        return self._finish_partial(hist, "loop_detected", t_start, session)
                    self.emit("plan_copied", id=new_id("step"), parent=self.id)
                    hist.append("user", plan.copy_hint or P.HINT_REPEAT)  # not run again: its output is above
                    continue
                stepped = self._next_step_instead(guard, blocks, plan)
                if stepped is not None:
                    blocks, kept = [stepped], f"```python\n{stepped}\n```"
            hist.append("assistant", kept.strip())

            outputs, outcome, failed = self._run_cells(env, blocks, tid, turn)
            if outcome.final is not None:
                ans = answer_text(outcome.final)
                if ans:
                    return self._end(ans, FINAL, False, t_start)
            if self.budget.exhausted is not None:
                return self._finish_partial(hist, self.budget.exhausted.reason, t_start, session)
            stop = self.budget.stop_reason()
            if stop is not None:
                return self._finish_partial(hist, stop, t_start, session)

            output = "\n".join(outputs)
            if output.strip() and not failed:
                self.last_output = output
                self.evidence.append(output[:EVIDENCE_CHARS])
                if planned is not None:
                    plan_answer = output.strip()[:2000]  # its worker's answer
            hints = []
            if planned is not None and not failed:
                hints.append(planned.hint)
            if stepped is not None:
                hints.append(P.HINT_STEPPED)
            ran = planned.code if planned is not None else "\n".join(blocks)  # as the root saw it, so a copy repeats
            if guard.cell(ran, output, failed):
                if guard.looping:
                    return self._finish_partial(hist, "loop_detected", t_start, session)
                hints.append(P.HINT_REPEAT)
                if self.shape is not None and self.shape.next_step:
                    hints.append(P.HINT_NEXT_STEP.format(next_step=self.shape.next_step))
            if failed:
                if guard.too_many_errors:
                    return self._finish_partial(hist, "too_many_errors", t_start, session)
                if outcome.limit and outcome.limit != "cancelled":
                    reset = " The REPL state was reset: earlier variables are gone." if outcome.state_reset else ""
                    hints.append(P.HINT_LIMIT.format(limit=outcome.limit.replace("_", " "), reset=reset))
                elif outcome.error and outcome.error.startswith(("ImportError", "ModuleNotFoundError")):
                    hints.append(P.HINT_IMPORT)  # seen: a 1.5B root importing the package whose source it was given
                else:
                    hints.append(P.HINT_ERROR)
            if outcome.final is not None:
                hints.append(P.HINT_FINAL_NONE)
            if self.restored:
                hints.append(P.HINT_RESTORED.format(names=", ".join(self.restored)))
                self.restored = []
            if hist.note_pending:
                hints.append(P.HINT_COMPACTED)
                hist.note_pending = False
            if not hints:
                hints.append(P.HINT_NEXT)
            if self.rlm.sub_calls and self.subs.cell_counter.sub_calls:
                hints.append(P.HINT_BUDGET.format(left=self.budget.sub_calls_left(), total=lim.max_sub_calls))
            hist.append(
                "user",
                P.CELL_OUTPUT.format(
                    output=truncate_output(output, lim.max_output_chars), question=self.question, hint=" ".join(hints)
                ),
            )

    def _next_step_instead(self, guard: LoopGuard, blocks: list[str], plan: PlannedStep | None) -> str | None:
        """The example's next step, once per run, in place of a cell that repeats one already run.

        Why: greedy decoding makes a 1.5B root re-run the same search or definition three times in a row even
        when told the next step in words (seen on 9 of 10 multihop and code runs); running the step its example
        takes next turns the stall into progress, and the root sees that code as its own reply.
        """
        shape = self.shape
        if self.auto_stepped or shape is None or not shape.next_step or not guard.seen("\n".join(blocks)):
            return None
        if plan is not None and plan.code == shape.next_step:  # the engine ran that step already: no news in it
            return None
        self.auto_stepped = True
        self.emit("auto_step", id=new_id("step"), parent=self.id, shape=shape.key, code=shape.next_step)
        return shape.next_step

    def _finish_partial(
        self,
        hist: History,
        reason: str,
        t_start: float,
        session: str,
        *,
        candidate: str = "",
        error: str | None = None,
    ) -> RunEnd:
        answer = partial_answer(self, hist, reason, session, candidate)
        return self._end(answer, reason, True, t_start, error=error)


def _copies(plan: PlannedStep, blocks: list[str]) -> bool:
    """Whether the root's code re-sends the planned step unchanged (seen on most planned runs, every shape)."""
    return "\n".join(blocks).strip() == plan.code.strip()
