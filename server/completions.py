"""``/v1/chat/completions`` and ``/v1/completions``: the RLM flow (plain models are in :mod:`server.plain`).

Why the work runs on a thread pool with the request's cancel token: the engine is synchronous and long-running. The
event loop stays free to stream progress, send keep-alive pings and watch the connection; a client that goes away
(or a shutdown, or ``POST /v1/runs/{id}/cancel``) fires the token, and the engine stops within a decode step. The
admission slot, the session and the token are released when the *thread* finishes, never earlier, so a cancelled
request cannot leave more work running than the server admits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from server import sse
from server.errors import INVALID, NOT_FOUND, SERVER, APIError, bad_request, log_error
from server.lifecycle import SSE_HEADERS, new_token, watch_disconnect
from server.plain import handle_plain
from server.registry import RLMModel, accepts
from server.rlm_requests import build_inputs, build_limits, completion_result, shape_answer
from server.runs import CANCELLED, DONE, FAILED, RunRecord
from server.schemas import CompletionRequest
from server.sessions import SessionEntry
from server.state import AppState

_log = logging.getLogger("outcore.server")
_FAILED_REASONS = ("backend_error", "environment_error")


def _check_prompt(prompt: Any) -> None:
    """The engine's own input check (empty, binary, not UTF-8), before the request takes a slot."""
    if prompt is None:
        return
    try:
        from engine.inputs import InvalidPromptError, check_prompt
    except ImportError:  # an engine without the check: it reports at run time
        return
    try:
        check_prompt(prompt)
    except InvalidPromptError as e:
        raise bad_request(str(e), "messages", "invalid_prompt") from None


def _finish_reason(engine_reason: str, cut: str | None) -> str:
    if cut is not None:
        return cut
    return "stop" if engine_reason in ("final", "direct") else "length"


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
        return await _rlm(state, request, creq, model)
    return await handle_plain(state, request, creq, model)


# ------------------------------------------------------------------------------------------------ RLM runs


def _execute(
    state: AppState,
    model: RLMModel,
    rec: RunRecord,
    prompt: Any,
    question: str | None,
    limits: dict[str, Any],
    session: Any,
) -> dict[str, Any]:
    """The engine call, on a pool thread; the record is finished here whatever happens."""
    rec.set_running()
    rlm = model.rlm
    kwargs: dict[str, Any] = {"run_id": rec.id, "on_event": rec.publish, "cancel": rec.cancel}
    if limits:
        kwargs["limits"] = limits
    if session is not None:
        kwargs["session"] = session
    kwargs = {k: v for k, v in kwargs.items() if accepts(rlm.completion, k)}
    t0 = time.monotonic()
    try:
        result = completion_result(rlm.completion(prompt, question, **kwargs))
        status = CANCELLED if result["finish_reason"] == "cancelled" else DONE
        if result["finish_reason"] in _FAILED_REASONS and not result["answer"]:
            status = FAILED
    except ValueError as e:  # the engine refused the input (InvalidPromptError, invalid limits): a 400
        result = {
            "answer": "",
            "finish_reason": "invalid_request",
            "partial": True,
            "error": str(e),
            "usage": None,
            "usage_by_role": {},
            "root_turns": 0,
            "sub_calls": 0,
        }
        status = FAILED
    except Exception as e:  # noqa: BLE001 - reported as a failed run; the traceback stays in the log
        _log.error("run failed", exc_info=e, extra={"fields": {"run": rec.id, "model": model.name}})
        result = {
            "answer": "",
            "finish_reason": "backend_error",
            "partial": True,
            "error": f"{type(e).__name__}: {e}",
            "usage": None,
            "usage_by_role": {},
            "root_turns": 0,
            "sub_calls": 0,
        }
        status = FAILED
    result["latency_s"] = round(time.monotonic() - t0, 3)
    m = state.metrics
    m.runs.labels(model.name, result["finish_reason"]).inc()
    m.latency.labels(model.name).observe(time.monotonic() - t0)
    m.record_usage(model.name, result.get("usage_by_role") or {}, int(result.get("sub_calls") or 0))
    rec.finish(status, result)
    state.runs.prune()
    if result.get("error"):
        _log.warning(
            "run ended with an error",
            extra={"fields": {"run": rec.id, "finish_reason": result["finish_reason"], "error": result["error"]}},
        )
    return result


async def _rlm(state: AppState, request: Request, creq: CompletionRequest, model: RLMModel) -> Response:
    s = state.settings.server
    limits = build_limits(creq, model)
    session_id = creq.session_id or request.headers.get("x-outcore-session") or None
    entry: SessionEntry | None = None
    loop = asyncio.get_running_loop()
    if session_id:
        entry = await loop.run_in_executor(None, state.sessions.acquire, session_id, model.name, model.rlm)
        state.metrics.sessions.set(state.sessions.count())

    def prepare() -> tuple[Any, str | None, str]:  # reads uploaded files: off the event loop
        turn = entry.requests if entry else None
        inputs = build_inputs(creq, state.contexts, s.max_context_chars, session_turn=turn)
        _check_prompt(inputs[0])
        return inputs

    try:
        prompt, question, preview = await loop.run_in_executor(None, prepare)
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
    created = int(time.time())
    count = model.root.count_tokens

    async def drive() -> dict[str, Any]:
        if not await state.admission.acquire(token.is_set):
            _cleanup(None)
            result = {
                "answer": "",
                "finish_reason": "cancelled",
                "partial": True,
                "error": None,
                "usage": None,
                "usage_by_role": {},
            }
            rec.finish(CANCELLED, result)
            return result
        fut = loop.run_in_executor(
            state.executor,
            _execute,
            state,
            model,
            rec,
            prompt,
            question,
            limits,
            entry.engine_session if entry else None,
        )
        fut.add_done_callback(lambda _f: _cleanup(True))
        return await asyncio.shield(fut)

    def _cleanup(slot: bool | None) -> None:
        if slot:
            state.admission.release()
        if entry is not None:
            state.sessions.release(entry, completed=rec.status == DONE)
        state.untrack(token)
        token.close()

    headers = {"X-Outcore-Run-Id": rec.id}
    if session_id:
        headers["X-Outcore-Session"] = session_id

    def outcore_extra(result: dict[str, Any]) -> dict[str, Any]:
        keep = (
            "finish_reason",
            "partial",
            "error",
            "usage_by_role",
            "root_turns",
            "sub_calls",
            "cells",
            "elapsed_s",
            "trace_path",
        )
        return {"run_id": rec.id, "session_id": session_id, **{k: result.get(k) for k in keep}}

    def failure(result: dict[str, Any]) -> APIError | None:
        if result["finish_reason"] == "invalid_request":
            return APIError(400, str(result.get("error")), INVALID, param="messages", extra={"run_id": rec.id})
        if result["finish_reason"] in _FAILED_REASONS and not result["answer"]:
            return APIError(
                500,
                f"the run failed: {result.get('error') or result['finish_reason']}",
                SERVER,
                code=result["finish_reason"],
                extra={"run_id": rec.id},
            )
        return None

    if not creq.stream:
        watcher = asyncio.create_task(watch_disconnect(request, token, rec.id))
        try:
            result = await drive()
        finally:
            watcher.cancel()
            if rec.result is None:
                token.cancel("cancelled")
        err = failure(result)
        if err is not None:
            log_error(request, err, rec.id)
            return JSONResponse(err.body(), status_code=err.status, headers=headers)
        text, cut = shape_answer(result["answer"], creq.stop, creq.max_tokens, count)
        body = sse.completion_body(
            creq.route,
            _cid(creq.route, rec.id),
            model.name,
            created,
            text,
            _finish_reason(result["finish_reason"], cut),
            sse.usage_block(result.get("usage")),
            {"outcore": outcore_extra(result)},
        )
        return JSONResponse(body, headers=headers)

    past, queue = rec.subscribe()
    keepalive = s.keepalive_s

    async def stream() -> AsyncIterator[str]:
        cid = _cid(creq.route, rec.id)
        task = asyncio.ensure_future(drive())
        watcher = asyncio.create_task(watch_disconnect(request, token, rec.id))
        try:
            yield sse.data(
                sse.chunk(
                    creq.route,
                    cid,
                    model.name,
                    created,
                    role="assistant",
                    content="",
                    extra={"outcore": {"run_id": rec.id, "session_id": session_id}},
                )
            )
            yield sse.comment(f"outcore run {rec.id} queued")
            for ev in past:
                yield sse.progress(ev)
            while queue is not None:
                try:
                    item = await asyncio.wait_for(queue.get(), keepalive)
                except TimeoutError:
                    yield sse.comment("ping")
                    continue
                if item is None:
                    break
                if item["event"] == "status":
                    yield sse.comment(f"outcore status {item['status']}")
                else:
                    yield sse.progress(item)
            result = await task
            err = failure(result)
            if err is not None:
                log_error(request, err, rec.id)
                yield sse.data(err.body())
                yield sse.DONE
                return
            text, cut = shape_answer(result["answer"], creq.stop, creq.max_tokens, count)
            if text:
                yield sse.data(sse.chunk(creq.route, cid, model.name, created, content=text))
            extra = {"outcore": outcore_extra(result)}
            yield sse.data(
                sse.chunk(
                    creq.route,
                    cid,
                    model.name,
                    created,
                    finish_reason=_finish_reason(result["finish_reason"], cut),
                    extra=extra,
                )
            )
            if creq.include_usage:
                yield sse.data(
                    sse.usage_chunk(creq.route, cid, model.name, created, sse.usage_block(result.get("usage")), extra)
                )
            yield sse.DONE
        finally:
            watcher.cancel()
            if queue is not None:
                rec.unsubscribe(queue)
            if rec.result is None:
                token.cancel("cancelled")  # the client went away mid-stream

    return StreamingResponse(stream(), media_type="text/event-stream", headers={**headers, **SSE_HEADERS})


def _cid(route: str, run_id: str) -> str:
    return f"{'chatcmpl' if route == 'chat' else 'cmpl'}-{run_id}"
