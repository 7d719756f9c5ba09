"""The FastAPI app: ``create_app(settings, loader)`` where ``loader`` builds the served models.

Why a factory that takes the loader: tests and embedders inject any registry (scripted backends, an ``openai:``
pool) while ``outcore serve`` passes :func:`server.registry.build_registry`. Models load on a thread after the
socket is open, so ``/health`` can answer 503 while loading. Auth and the body limit are plain ASGI middleware:
they answer before a byte of an unauthorised or oversized body is read.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from server import completions, errors
from server.config import Settings
from server.errors import AUTH, NOT_FOUND, TOO_LARGE, APIError, bad_request
from server.registry import Registry, RLMModel
from server.schemas import parse_chat, parse_text
from server.state import AppState

STATIC = Path(__file__).parent / "static"
Scope = dict[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]
]


class BodyTooLarge(APIError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"the request body is larger than the limit of {limit:,} bytes", TOO_LARGE, code="request_too_large"
        )


async def _send_error(send: Callable[[dict[str, Any]], Awaitable[None]], err: APIError) -> None:
    body = json.dumps(err.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_ROUTE_PATTERNS = [
    (re.compile(r"^/v1/runs/[^/]+/events$"), "/v1/runs/{id}/events"),
    (re.compile(r"^/v1/runs/[^/]+/cancel$"), "/v1/runs/{id}/cancel"),
    (re.compile(r"^/v1/runs/[^/]+$"), "/v1/runs/{id}"),
    (re.compile(r"^/v1/contexts/[^/]+$"), "/v1/contexts/{id}"),
    (re.compile(r"^/v1/files/[^/]+$"), "/v1/files/{id}"),
    (re.compile(r"^/v1/sessions/[^/]+$"), "/v1/sessions/{id}"),
    (re.compile(r"^/v1/models/.+$"), "/v1/models/{id}"),
    (re.compile(r"^/ui(/.*)?$"), "/ui"),
]
_ROUTES = {
    "/health",
    "/metrics",
    "/v1/models",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/contexts",
    "/v1/files",
    "/v1/runs",
    "/v1/sessions",
    "/",
}


def route_label(path: str) -> str:
    if path in _ROUTES:
        return path
    for pat, label in _ROUTE_PATTERNS:
        if pat.match(path):
            return label
    return "other"


class OutcoreApp:
    """The ASGI app ``outcore serve`` runs: the FastAPI routes behind :func:`guard`, with the state exposed."""

    def __init__(self, api: FastAPI, state: AppState) -> None:
        self.api = api
        self.state = state
        self._asgi = guard(api, state)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await self._asgi(scope, receive, send)


def guard(app: ASGIApp, state: AppState) -> ASGIApp:
    """Auth (Bearer, X-Api-Key, or ``?api_key=`` for the browser page), body limit, and request counting."""
    keys = [k.encode() for k in state.settings.server.api_keys]
    limit = state.settings.server.max_body_bytes

    def authorised(scope: Scope) -> bool:
        if not keys:
            return True
        headers = dict(scope.get("headers") or [])
        given: list[bytes] = []
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            given.append(auth[7:].strip())
        if b"x-api-key" in headers:
            given.append(headers[b"x-api-key"].strip())
        qs = scope.get("query_string", b"")
        for part in qs.split(b"&"):
            if part.startswith(b"api_key="):
                from urllib.parse import unquote_to_bytes

                given.append(unquote_to_bytes(part[8:]))
        return any(hmac.compare_digest(g, k) for g in given for k in keys)

    async def middleware(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        label = route_label(scope.get("path", ""))
        status_box = {"status": 500}

        async def counting_send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                status_box["status"] = msg["status"]
            await send(msg)

        try:
            path = scope.get("path", "")
            # public: the readiness probe, and the page's static code (no data; the page's API calls need the key)
            public = path == "/health" or path.startswith("/ui/static/")
            if not public and not authorised(scope):
                err = APIError(
                    401, "invalid or missing API key (send 'Authorization: Bearer KEY')", AUTH, code="invalid_api_key"
                )
                errors.log_error(None, err, scope=scope)
                await _send_error(counting_send, err)
                return
            headers = dict(scope.get("headers") or [])
            cl = headers.get(b"content-length")
            if cl is not None and cl.isdigit() and int(cl) > limit:
                err = BodyTooLarge(limit)
                errors.log_error(None, err, scope=scope)
                await _send_error(counting_send, err)
                return
            seen = 0

            async def limited_receive() -> dict[str, Any]:
                nonlocal seen
                msg: dict[str, Any] = await receive()
                if msg["type"] == "http.request":
                    seen += len(msg.get("body", b""))
                    if seen > limit:
                        raise BodyTooLarge(limit)
                return msg

            await app(scope, limited_receive, counting_send)
        finally:
            state.metrics.requests.labels(label, str(status_box["status"])).inc()

    return middleware


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise bad_request("the request body is empty; send a JSON object")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise bad_request(f"the request body is not valid JSON: {e}") from None


def create_app(settings: Settings, loader: Callable[[], Registry]) -> OutcoreApp:
    state = AppState(settings, loader)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=state.load, name="outcore-load-models", daemon=True).start()
        sweeper = asyncio.create_task(_sweep(state))
        try:
            yield
        finally:
            sweeper.cancel()
            state.begin_shutdown()
            await asyncio.get_running_loop().run_in_executor(None, state.close)

    app = FastAPI(title="outcore", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.outcore = state
    errors.install(app)

    @app.get("/health")
    async def health() -> JSONResponse:
        reg = state.require_ready()
        sick = [name for name, m in reg.models.items() if not m.healthy()]
        if sick:
            raise APIError(503, f"unhealthy model(s): {', '.join(sick)}", errors.UNAVAILABLE, code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/v1/models")
    async def list_models() -> JSONResponse:
        reg = state.require_ready()
        return JSONResponse({"object": "list", "data": [_model_card(reg, n) for n in reg.models]})

    @app.get("/v1/models/{name:path}")
    async def get_model(name: str) -> JSONResponse:
        reg = state.require_ready()
        if name not in reg.models:
            raise APIError(404, f"The model '{name}' does not exist", NOT_FOUND, param="model", code="model_not_found")
        return JSONResponse(_model_card(reg, name, detail=True))

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        creq = parse_chat(await _json_body(request))
        return await completions.handle(state, request, creq)

    @app.post("/v1/completions")
    async def text(request: Request) -> Response:
        creq = parse_text(await _json_body(request))
        return await completions.handle(state, request, creq)

    # -- uploaded contexts --------------------------------------------------------------------------------
    @app.post("/v1/contexts")
    async def upload(request: Request) -> JSONResponse:
        state.require_ready()
        name = request.query_params.get("filename", "")
        item = await state.contexts.save(request.stream(), filename=name)
        return JSONResponse(item.as_context())

    # the OpenAI Files API shape of the same store (``client.files.create(file=..., purpose=...)``)
    @app.post("/v1/files")
    async def upload_file(request: Request) -> JSONResponse:
        state.require_ready()
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise bad_request("send the file as multipart/form-data with fields 'file' and 'purpose'", "file")
        try:
            form = await request.form(max_files=1, max_fields=8)
        except Exception as e:  # noqa: BLE001 - a malformed multipart body is the client's error
            raise bad_request(f"the multipart body could not be parsed: {e}", "file") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise bad_request("missing required field 'file'", "file")
        purpose = form.get("purpose")

        async def chunks() -> AsyncIterator[bytes]:
            while chunk := await upload.read(1 << 20):
                yield chunk

        try:
            item = await state.contexts.save(
                chunks(),
                prefix="file",
                filename=upload.filename or "",
                purpose=purpose if isinstance(purpose, str) else "context",
            )
        finally:
            await form.close()
        return JSONResponse(item.as_file())

    @app.get("/v1/files")
    async def files() -> JSONResponse:
        return JSONResponse({"object": "list", "data": [c.as_file() for c in state.contexts.items()]})

    @app.get("/v1/files/{cid}")
    async def get_file(cid: str) -> JSONResponse:
        item = state.contexts.get(cid)
        if item is None:
            raise APIError(404, f"file {cid!r} does not exist", NOT_FOUND, param="file_id", code="file_not_found")
        return JSONResponse(item.as_file())

    @app.delete("/v1/files/{cid}")
    async def delete_file(cid: str) -> JSONResponse:
        if not state.contexts.delete(cid):
            raise APIError(404, f"file {cid!r} does not exist", NOT_FOUND, param="file_id", code="file_not_found")
        return JSONResponse({"id": cid, "object": "file", "deleted": True})

    @app.get("/v1/contexts")
    async def contexts() -> JSONResponse:
        return JSONResponse({"object": "list", "data": [c.as_context() for c in state.contexts.items()]})

    @app.get("/v1/contexts/{cid}")
    async def get_context(cid: str) -> JSONResponse:
        item = state.contexts.get(cid)
        if item is None:
            raise APIError(404, f"context {cid!r} does not exist", NOT_FOUND, code="context_not_found")
        return JSONResponse(item.as_context())

    @app.delete("/v1/contexts/{cid}")
    async def delete_context(cid: str) -> JSONResponse:
        if not state.contexts.delete(cid):
            raise APIError(404, f"context {cid!r} does not exist", NOT_FOUND, code="context_not_found")
        return JSONResponse({"id": cid, "object": "outcore.context", "deleted": True})

    # -- runs ------------------------------------------------------------------------------------------------
    @app.get("/v1/runs")
    async def runs(request: Request) -> JSONResponse:
        try:
            limit = max(1, min(int(request.query_params.get("limit", "50")), 1000))
        except ValueError:
            raise bad_request("limit: must be an integer", "limit") from None
        status = request.query_params.get("status") or None
        return JSONResponse({"object": "list", "data": [r.summary() for r in state.runs.recent(limit, status)]})

    def _run(run_id: str) -> Any:
        rec = state.runs.get(run_id)
        if rec is None:
            raise APIError(
                404, f"run {run_id!r} does not exist (or is past retention)", NOT_FOUND, code="run_not_found"
            )
        return rec

    @app.get("/v1/runs/{run_id}")
    async def run_detail(run_id: str, request: Request) -> JSONResponse:
        events = request.query_params.get("events", "true").lower() not in ("0", "false", "no")
        return JSONResponse(_run(run_id).detail(with_events=events))

    @app.post("/v1/runs/{run_id}/cancel")
    async def cancel_run(run_id: str) -> JSONResponse:
        rec = _run(run_id)
        rec.cancel.cancel("cancelled")
        return JSONResponse({**rec.summary(), "cancel_requested": True})

    @app.get("/v1/runs/{run_id}/events")
    async def run_events(run_id: str, request: Request) -> StreamingResponse:
        rec = _run(run_id)
        try:
            after = int(request.headers.get("last-event-id", "-1"))
        except ValueError:
            after = -1
        past, queue = rec.subscribe(after)
        keepalive = min(state.settings.server.keepalive_s, 15.0)

        async def gen() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                yield _ev({"event": "status", "status": rec.status})
                for ev in past:
                    yield _ev(ev)
                while queue is not None:
                    try:
                        ev = await asyncio.wait_for(queue.get(), keepalive)
                    except TimeoutError:
                        yield ": ping\n\n"
                        continue
                    if ev is None:
                        break
                    yield _ev(ev)
                yield f"event: end\ndata: {json.dumps(rec.summary())}\n\n"
            finally:
                if queue is not None:
                    rec.unsubscribe(queue)

        return StreamingResponse(gen(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    # -- sessions --------------------------------------------------------------------------------------------
    @app.get("/v1/sessions")
    async def sessions() -> JSONResponse:
        return JSONResponse({"object": "list", "data": state.sessions.describe()})

    @app.delete("/v1/sessions/{sid}")
    async def delete_session(sid: str) -> JSONResponse:
        if not await asyncio.get_running_loop().run_in_executor(None, state.sessions.delete, sid):
            raise APIError(404, f"session {sid!r} does not exist", NOT_FOUND, code="session_not_found")
        state.metrics.sessions.set(state.sessions.count())
        return JSONResponse({"id": sid, "object": "outcore.session", "deleted": True})

    # -- metrics and the page --------------------------------------------------------------------------------
    @app.get("/metrics")
    async def metrics() -> Response:
        from server.metrics import CONTENT_TYPE

        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/")
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui")

    @app.get("/ui")
    async def ui() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/ui/static", StaticFiles(directory=STATIC), name="static")
    return OutcoreApp(app, state)


def _ev(ev: dict[str, Any]) -> str:
    seq = ev.get("seq")
    head = f"id: {seq}\n" if seq is not None else ""
    return head + "data: " + json.dumps(ev, ensure_ascii=False, default=str) + "\n\n"


def _model_card(reg: Registry, name: str, detail: bool = False) -> dict[str, Any]:
    m = reg.models[name]
    card: dict[str, Any] = {"id": name, "object": "model", "created": reg.created, "owned_by": "outcore"}
    meta = m.meta()
    if detail:
        backends = [m.rlm.root, m.rlm.worker] if isinstance(m, RLMModel) else [m.backend]
        stats = {}
        for b in backends:
            st = getattr(b, "stats", None)
            if st is not None:
                stats[b.info.name] = {k: v for k, v in vars(st).items() if isinstance(v, (int, float))}
        meta["backend_stats"] = stats
    card["outcore"] = meta
    return card


async def _sweep(state: AppState) -> None:
    """Expire idle sessions and old runs now and then."""
    while True:
        await asyncio.sleep(2.0)
        try:
            await asyncio.get_running_loop().run_in_executor(None, state.sessions.expire)
            state.runs.prune()
            state.metrics.sessions.set(state.sessions.count())
        except Exception:  # noqa: BLE001 - the sweeper must not die
            errors._log.warning("sweep failed", exc_info=True)
