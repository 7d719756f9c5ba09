"""Runs and sessions: ``/v1/runs`` (list, detail, cancel, live events) and ``/v1/sessions``.

Why a run has its own event stream: a client (or the ``/ui`` page) can watch a run that another connection
started, resume after a drop with ``Last-Event-ID``, and cancel it, without holding the completion request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from server.api import app_state
from server.errors import NOT_FOUND, APIError, bad_request
from server.runs import RunRecord
from server.sse import event_source
from server.state import AppState

router = APIRouter()


def _run(state: AppState, run_id: str) -> RunRecord:
    rec = state.runs.get(run_id)
    if rec is None:
        raise APIError(404, f"run {run_id!r} does not exist (or is past retention)", NOT_FOUND, code="run_not_found")
    return rec


@router.get("/v1/runs")
async def runs(request: Request) -> JSONResponse:
    try:
        limit = max(1, min(int(request.query_params.get("limit", "50")), 1000))
    except ValueError:
        raise bad_request("limit: must be an integer", "limit") from None
    status = request.query_params.get("status") or None
    data = [r.summary() for r in app_state(request).runs.recent(limit, status)]
    return JSONResponse({"object": "list", "data": data})


@router.get("/v1/runs/{run_id}")
async def run_detail(run_id: str, request: Request) -> JSONResponse:
    events = request.query_params.get("events", "true").lower() not in ("0", "false", "no")
    return JSONResponse(_run(app_state(request), run_id).detail(with_events=events))


@router.post("/v1/runs/{run_id}/cancel")
async def cancel_run(run_id: str, request: Request) -> JSONResponse:
    rec = _run(app_state(request), run_id)
    rec.cancel.cancel("cancelled")
    return JSONResponse({**rec.summary(), "cancel_requested": True})


@router.get("/v1/runs/{run_id}/events")
async def run_events(run_id: str, request: Request) -> EventSourceResponse:
    state = app_state(request)
    rec = _run(state, run_id)
    try:
        after = int(request.headers.get("last-event-id", "-1"))
    except ValueError:
        after = -1
    past, queue = rec.subscribe(after)

    def sse(ev: dict[str, object]) -> ServerSentEvent:
        seq = ev.get("seq")
        return ServerSentEvent(json.dumps(ev, ensure_ascii=False, default=str), id=None if seq is None else str(seq))

    async def gen() -> AsyncIterator[ServerSentEvent]:
        try:
            yield ServerSentEvent(retry=2000)
            yield sse({"event": "status", "status": rec.status})
            for ev in past:
                yield sse(ev)
            while queue is not None and (item := await queue.get()) is not None:
                yield sse(item)
            yield ServerSentEvent(json.dumps(rec.summary()), event="end")
        finally:
            if queue is not None:
                rec.unsubscribe(queue)

    return event_source(gen(), min(state.settings.server.keepalive_s, 15.0))


@router.get("/v1/sessions")
async def sessions(request: Request) -> JSONResponse:
    return JSONResponse({"object": "list", "data": app_state(request).sessions.describe()})


@router.delete("/v1/sessions/{sid}")
async def delete_session(sid: str, request: Request) -> JSONResponse:
    state = app_state(request)
    if not await asyncio.get_running_loop().run_in_executor(None, state.sessions.delete, sid):
        raise APIError(404, f"session {sid!r} does not exist", NOT_FOUND, code="session_not_found")
    state.metrics.sessions.set(state.sessions.count())
    return JSONResponse({"id": sid, "object": "outcore.session", "deleted": True})
