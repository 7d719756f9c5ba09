"""Plain models: one ``chat`` call per request, token-streamed as OpenAI chunks.

Why the same admission and cancel path as RLM runs: a plain completion also occupies the shared models, so it takes
a slot, and a client that goes away (or a shutdown) drops its request from the backend at the next decode step.
The prompt is checked against the model's context before a slot is taken, so an oversized prompt is a clear 400
(``exceed_context_size_error``, as llama-server reports it) even when streaming.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import ServerSentEvent

from server import sse
from server.errors import CONTEXT, SERVER, UNAVAILABLE, APIError, log_error
from server.lifecycle import new_token, watch_disconnect
from server.registry import PlainModel
from server.schemas import CompletionRequest
from server.state import AppState

_log = logging.getLogger("outcore.server")


def _plain_params(creq: CompletionRequest, backend: Any, messages: list[Any]) -> tuple[Any, int]:
    from engine.backends.base import SamplingParams

    n_ctx = int(backend.info.n_ctx)
    exact = getattr(backend, "prompt_tokens", None)
    try:
        n_prompt = (
            len(exact(messages)) if callable(exact) else sum(backend.count_tokens(m.content) + 8 for m in messages)
        )
    except Exception:  # noqa: BLE001 - fall back to an estimate
        n_prompt = sum(len(m.content) // 4 + 8 for m in messages)
    room = n_ctx - n_prompt
    max_tokens = creq.max_tokens if creq.max_tokens is not None else max(1, min(room - 1, 4096))
    if n_prompt + max_tokens > n_ctx:
        raise APIError(
            400,
            f"request ({n_prompt} tokens + max_tokens {max_tokens}) exceeds the available context size "
            f"({n_ctx} tokens), try increasing it",
            CONTEXT,
            code=400,
            extra={"n_prompt_tokens": n_prompt, "n_ctx": n_ctx},
        )
    params = SamplingParams(
        max_tokens=max_tokens,
        temperature=creq.temperature if creq.temperature is not None else 0.0,
        top_p=creq.top_p if creq.top_p is not None else 1.0,
        seed=creq.seed,
        stop=creq.stop,
    )
    return params, n_prompt


async def handle_plain(state: AppState, request: Request, creq: CompletionRequest, model: PlainModel) -> Response:
    from engine.backends.base import ContextOverflowError, Generation, Message

    if creq.context_ids or creq.session_id or creq.limits:
        raise APIError(
            400, f"context_id, session_id and limits need an RLM model; {model.name!r} is plain", param="model"
        )
    backend = model.backend
    messages = [Message(m.role, m.content) for m in creq.messages]  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    params, _ = await loop.run_in_executor(None, _plain_params, creq, backend, messages)  # tokenizes: off the loop
    state.admission.enter()
    token = new_token()
    state.track(token)
    cid = f"{'chatcmpl' if creq.route == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"
    request.state.run_id = cid
    created = int(time.time())
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    t0 = time.monotonic()

    def on_text(delta: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("text", delta))

    def call() -> Generation:
        try:
            gen = backend.chat(messages, params, cancel=token, owner=cid, on_text=on_text if creq.stream else None)
        except BaseException as e:  # noqa: BLE001 - handed to the event loop
            loop.call_soon_threadsafe(queue.put_nowait, ("error", e))
            raise
        loop.call_soon_threadsafe(queue.put_nowait, ("done", gen))
        return gen

    def cleanup(slot: bool) -> None:
        if slot:
            state.admission.release()
        state.untrack(token)
        token.close()

    async def start() -> bool:
        if not await state.admission.acquire(token):
            cleanup(False)
            return False
        fut = loop.run_in_executor(state.executor, call)
        fut.add_done_callback(lambda _f: cleanup(True))
        fut.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)  # retrieved: no warning
        return True

    def record(gen: Any) -> dict[str, Any]:
        u = {
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": gen.completion_tokens,
            "cached_tokens": gen.cached_tokens,
        }
        state.metrics.record_usage(model.name, {"plain": u}, 0)
        state.metrics.latency.labels(model.name).observe(time.monotonic() - t0)
        return sse.usage_block(u)

    def map_error(e: BaseException) -> APIError:
        from engine.cancel import Cancelled

        if isinstance(e, ContextOverflowError):
            return APIError(
                400, str(e), CONTEXT, code=400, extra={"n_prompt_tokens": e.prompt_tokens, "n_ctx": backend.info.n_ctx}
            )
        if isinstance(e, Cancelled):
            return APIError(503, "the request was cancelled (the server is shutting down)", UNAVAILABLE, code=503)
        _log.error("plain completion failed", exc_info=e, extra={"fields": {"run": cid, "model": model.name}})
        return APIError(500, f"the model failed: {type(e).__name__}: {e}", SERVER, code="backend_error")

    async def next_item() -> tuple[str, Any]:
        return await queue.get()

    if not creq.stream:
        watcher = asyncio.create_task(watch_disconnect(request, token, cid))
        done = False
        try:
            if not await start():
                raise APIError(503, "the request was cancelled before it started", UNAVAILABLE, code=503)
            while True:
                kind, val = await next_item()
                if kind == "done":
                    done = True
                    break
                if kind == "error":
                    done = True
                    raise map_error(val)
        finally:
            watcher.cancel()
            if not done:
                token.cancel("cancelled")  # the handler itself was cancelled (shutdown): stop the model too
        body = sse.completion_body(
            creq.route,
            cid,
            model.name,
            created,
            val.text,
            "length" if val.finish_reason == "length" else "stop",
            record(val),
        )
        return JSONResponse(body)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        finished = False
        try:
            if not await start():
                return
            yield sse.data(sse.chunk(creq.route, cid, model.name, created, role="assistant", content=""))
            while True:
                kind, val = await next_item()
                if kind == "text":
                    if val:
                        yield sse.data(sse.chunk(creq.route, cid, model.name, created, content=val))
                    continue
                if kind == "error":
                    err = map_error(val)
                    log_error(request, err, cid)
                    yield sse.data(err.body())
                    yield sse.DONE
                    finished = True
                    return
                fr = "length" if val.finish_reason == "length" else "stop"
                yield sse.data(sse.chunk(creq.route, cid, model.name, created, finish_reason=fr))
                usage = record(val)
                if creq.include_usage:
                    yield sse.data(sse.usage_chunk(creq.route, cid, model.name, created, usage, {}))
                yield sse.DONE
                finished = True
                return
        finally:  # sse-starlette ends the stream when the client goes away: stop the model too
            if not finished:
                token.cancel("cancelled")

    return sse.event_source(stream(), state.settings.server.keepalive_s)
