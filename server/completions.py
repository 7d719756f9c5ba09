"""``/v1/chat/completions`` and ``/v1/completions``: the RLM flow (plain models are in :mod:`server.plain`).

Why the work runs on a thread pool with the request's cancel token: the engine is synchronous and long-running. The
event loop stays free to stream progress, send keep-alive pings and watch the connection; a client that goes away
(or a shutdown, or ``POST /v1/runs/{id}/cancel``) fires the token, and the engine stops within a decode step. The
admission slot, the session and the token are released when the *thread* finishes, never earlier, so a cancelled
request cannot leave more work running than the server admits.

Why the prompt and the limits are checked here only once each: the limits are merged and validated into one
``Limits`` (which the engine takes as is), and the prompt is checked by the engine itself before any model runs
(its ``ValueError`` becomes a 400). The result is serialised once, by ``Completion.to_dict``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import ServerSentEvent

from server import sse
from server.errors import INVALID, NOT_FOUND, SERVER, APIError, log_error
from server.lifecycle import new_token, watch_disconnect
from server.plain import handle_plain
from server.registry import RLMModel
from server.rlm_requests import build_inputs, build_limits, shape_answer
from server.runs import CANCELLED, DONE, FAILED, RunRecord
from server.schemas import CompletionRequest
from server.sessions import SessionEntry
from server.state import AppState

if TYPE_CHECKING:
    from engine.cancel import CancelToken
    from engine.environment import PromptSource
    from engine.guardrails import Limits

_log = logging.getLogger("outcore.server")
_FAILED_REASONS = ("backend_error", "environment_error")
_EXTRA_KEYS = (
    *("finish_reason", "partial", "error", "usage_by_role", "root_turns", "sub_calls", "cells", "elapsed_s"),
    "trace_path",
)


async def handle(state: AppState, request: Request, creq: CompletionRequest) -> Response:
    reg = state.require_ready()
    model = reg.get(creq.model)
    if model is None:
        raise APIError(
            404,
            f"The model '{creq.model}' does not exist; served models: {', '.join(sorted(reg.models))}",
            NOT_FOUND,
            param="model",
            code="model_not_found",
        )
    if isinstance(model, RLMModel):
        run = await _admit(state, request, creq, model)
        return await (_stream(run) if creq.stream else _answer(run))
    return await handle_plain(state, request, creq, model)


def _ended(reason: str, error: str | None) -> dict[str, Any]:
    """The result of a run that never produced a ``Completion`` (refused input, a crash, cancelled in the queue)."""
    return {"answer": "", "finish_reason": reason, "partial": True, "error": error, "usage": None, "usage_by_role": {}}


@dataclass
class RLMRun:
    """One admitted RLM request: what it runs, and what it holds until its thread ends."""

    state: AppState
    request: Request
    creq: CompletionRequest
    model: RLMModel
    rec: RunRecord
    token: CancelToken
    entry: SessionEntry | None
    prompt: PromptSource | None
    question: str | None
    limits: Limits | None

    @property
    def headers(self) -> dict[str, str]:
        h = {"X-Outcore-Run-Id": self.rec.id}
        if self.rec.session_id:
            h["X-Outcore-Session"] = self.rec.session_id
        return h

    def execute(self) -> dict[str, Any]:
        """The engine call, on a pool thread; the record is finished here whatever happens."""
        self.rec.set_running()
        rlm, t0 = self.model.rlm, time.monotonic()
        session = self.entry.engine_session if self.entry else None
        try:
            c = rlm.completion(
                self.prompt,
                self.question,
                run_id=self.rec.id,
                on_event=self.rec.publish,
                cancel=self.rec.cancel,
                limits=self.limits,
                session=session,
            )
            result = c.to_dict()
            status = CANCELLED if c.finish_reason == "cancelled" else DONE
            if c.finish_reason in _FAILED_REASONS and not c.answer:
                status = FAILED
        except ValueError as e:  # the engine refused the input (InvalidPromptError): a 400
            result, status = _ended("invalid_request", str(e)), FAILED
        except Exception as e:  # noqa: BLE001 - reported as a failed run; the traceback stays in the log
            _log.error("run failed", exc_info=e, extra={"fields": {"run": self.rec.id, "model": self.model.name}})
            result, status = _ended("backend_error", f"{type(e).__name__}: {e}"), FAILED
        result["latency_s"] = round(time.monotonic() - t0, 3)
        m = self.state.metrics
        m.runs.labels(self.model.name, result["finish_reason"]).inc()
        m.latency.labels(self.model.name).observe(time.monotonic() - t0)
        m.record_usage(self.model.name, result.get("usage_by_role") or {}, int(result.get("sub_calls") or 0))
        self.rec.finish(status, result)
        self.state.runs.prune()
        if result.get("error"):
            fields = {"run": self.rec.id, "finish_reason": result["finish_reason"], "error": result["error"]}
            _log.warning("run ended with an error", extra={"fields": fields})
        return result

    async def drive(self) -> dict[str, Any]:
        """Wait for a slot, then run on the pool; the slot is released when the thread ends, not before."""
        if not await self.state.admission.acquire(self.token):
            self.cleanup(slot=False)
            result = _ended("cancelled", None)
            self.rec.finish(CANCELLED, result)
            return result
        fut = asyncio.get_running_loop().run_in_executor(self.state.executor, self.execute)
        fut.add_done_callback(lambda _f: self.cleanup(slot=True))
        return await asyncio.shield(fut)

    def cleanup(self, *, slot: bool) -> None:
        if slot:
            self.state.admission.release()
        if self.entry is not None:
            self.state.sessions.release(self.entry, completed=self.rec.status == DONE)
        self.state.untrack(self.token)
        self.token.close()

    def failure(self, result: dict[str, Any]) -> APIError | None:
        if result["finish_reason"] == "invalid_request":
            return APIError(400, str(result.get("error")), INVALID, param="messages", extra={"run_id": self.rec.id})
        if result["finish_reason"] in _FAILED_REASONS and not result["answer"]:
            msg = f"the run failed: {result.get('error') or result['finish_reason']}"
            return APIError(500, msg, SERVER, code=result["finish_reason"], extra={"run_id": self.rec.id})
        return None

    def shaped(self, result: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """``(text, finish_reason, extra)``: the answer cut by ``stop``/``max_tokens``, and the ``outcore`` block."""
        text, cut = shape_answer(result["answer"], self.creq.stop, self.creq.max_tokens, self.model.root.count_tokens)
        reason = cut or ("stop" if result["finish_reason"] in ("final", "direct") else "length")
        extra = {"run_id": self.rec.id, "session_id": self.rec.session_id, **{k: result.get(k) for k in _EXTRA_KEYS}}
        return text, reason, {"outcore": extra}

    @property
    def cid(self) -> str:
        return f"{'chatcmpl' if self.creq.route == 'chat' else 'cmpl'}-{self.rec.id}"


async def _admit(state: AppState, request: Request, creq: CompletionRequest, model: RLMModel) -> RLMRun:
    """Validate the request, take a place in the queue (or 429) and create its run record."""
    limits = build_limits(creq, model)
    session_id = creq.session_id or request.headers.get("x-outcore-session") or None
    entry: SessionEntry | None = None
    loop = asyncio.get_running_loop()
    if session_id:
        entry = await loop.run_in_executor(None, state.sessions.acquire, session_id, model.name, model.rlm)
        state.metrics.sessions.set(state.sessions.count())
    turn = entry.requests if entry else None
    max_chars = state.settings.server.max_context_chars
    try:  # reads uploaded files: off the event loop
        prompt, question, preview = await loop.run_in_executor(
            None, lambda: build_inputs(creq, state.contexts, max_chars, session_turn=turn)
        )
        state.admission.enter()
    except APIError:
        if entry is not None:
            state.sessions.release(entry)
        raise
    from engine.trace import new_id

    token = new_token()
    state.track(token)
    rec = state.runs.create(new_id("run"), model.name, preview, session_id, token)
    request.state.run_id = rec.id
    return RLMRun(state, request, creq, model, rec, token, entry, prompt, question, limits)


async def _answer(run: RLMRun) -> Response:
    watcher = asyncio.create_task(watch_disconnect(run.request, run.token, run.rec.id))
    try:
        result = await run.drive()
    finally:
        watcher.cancel()
        if run.rec.result is None:
            run.token.cancel("cancelled")
    err = run.failure(result)
    if err is not None:
        log_error(run.request, err, run.rec.id)
        return JSONResponse(err.body(), status_code=err.status, headers=run.headers)
    text, reason, extra = run.shaped(result)
    usage = sse.usage_block(result.get("usage"))
    body = sse.completion_body(
        run.creq.route, run.cid, run.model.name, int(run.rec.created), text, reason, usage, extra
    )
    return JSONResponse(body, headers=run.headers)


async def _stream(run: RLMRun) -> Response:
    past, queue = run.rec.subscribe()
    route, cid, name, created = run.creq.route, run.cid, run.model.name, int(run.rec.created)

    async def events() -> AsyncIterator[ServerSentEvent]:
        task = asyncio.ensure_future(run.drive())
        try:
            hello = {"outcore": {"run_id": run.rec.id, "session_id": run.rec.session_id}}
            yield sse.data(sse.chunk(route, cid, name, created, role="assistant", content="", extra=hello))
            yield sse.comment(f"outcore run {run.rec.id} queued")
            for ev in past:
                yield sse.progress(ev)
            while queue is not None and (item := await queue.get()) is not None:
                status = item["status"] if item["event"] == "status" else None
                yield sse.comment(f"outcore status {status}") if status else sse.progress(item)
            result = await task
            err = run.failure(result)
            if err is not None:
                log_error(run.request, err, run.rec.id)
                yield sse.data(err.body())
                yield sse.DONE
                return
            text, reason, extra = run.shaped(result)
            if text:
                yield sse.data(sse.chunk(route, cid, name, created, content=text))
            yield sse.data(sse.chunk(route, cid, name, created, finish_reason=reason, extra=extra))
            if run.creq.include_usage:
                usage = sse.usage_block(result.get("usage"))
                yield sse.data(sse.usage_chunk(route, cid, name, created, usage, extra))
            yield sse.DONE
        finally:
            if queue is not None:
                run.rec.unsubscribe(queue)
            if run.rec.result is None:
                run.token.cancel("cancelled")  # the client went away mid-stream (sse-starlette ended the stream)

    return sse.event_source(events(), run.state.settings.server.keepalive_s, run.headers)
