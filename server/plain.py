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
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import ServerSentEvent

from server import sse
from server.errors import CONTEXT, SERVER, UNAVAILABLE, APIError, log_error
from server.lifecycle import new_token, watch_disconnect
from server.registry import PlainModel
from server.schemas import CompletionRequest
from server.state import AppState

if TYPE_CHECKING:
    from engine.backends.base import Backend, Generation, Message, SamplingParams

_log = logging.getLogger("outcore.server")


def _plain_params(creq: CompletionRequest, backend: Backend, messages: list[Message]) -> tuple[SamplingParams, int]:
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
    from engine.backends.base import Message

    if creq.context_ids or creq.session_id or creq.limits:
        raise APIError(
            400, f"context_id, session_id and limits need an RLM model; {model.name!r} is plain", param="model"
        )
    messages = [Message(m.role, m.content) for m in creq.messages]  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    params, _ = await loop.run_in_executor(None, _plain_params, creq, model.backend, messages)  # tokenizes: off loop
    state.admission.enter()
    call = PlainCall(state, request, creq, model, messages, params, loop)
    if creq.stream:
        return sse.event_source(call.stream(), state.settings.server.keepalive_s)
    return await call.answer()


class PlainCall:
    """One admitted plain completion: the backend call on the pool, its items relayed to the event loop."""

    def __init__(
        self,
        state: AppState,
        request: Request,
        creq: CompletionRequest,
        model: PlainModel,
        messages: list[Message],
        params: SamplingParams,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.state, self.request, self.creq, self.model = state, request, creq, model
        self.messages, self.params, self.loop = messages, params, loop
        self.token = new_token()
        state.track(self.token)
        self.cid = f"{'chatcmpl' if creq.route == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        request.state.run_id = self.cid
        self.created = int(time.time())
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.t0 = time.monotonic()

    def _put(self, kind: str, value: Any) -> None:  # from the pool thread
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, value))

    def _call(self) -> Generation:
        on_text = (lambda delta: self._put("text", delta)) if self.creq.stream else None
        try:
            gen = self.model.backend.chat(
                self.messages, self.params, cancel=self.token, owner=self.cid, on_text=on_text
            )
        except BaseException as e:  # noqa: BLE001 - handed to the event loop
            self._put("error", e)
            raise
        self._put("done", gen)
        return gen

    def _cleanup(self, slot: bool) -> None:
        if slot:
            self.state.admission.release()
        self.state.untrack(self.token)
        self.token.close()

    async def _start(self) -> bool:
        if not await self.state.admission.acquire(self.token):
            self._cleanup(False)
            return False
        fut = self.loop.run_in_executor(self.state.executor, self._call)
        fut.add_done_callback(lambda _f: self._cleanup(True))
        fut.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)  # retrieved: no warning
        return True

    def _record(self, gen: Generation) -> dict[str, Any]:
        u = {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens}
        u["cached_tokens"] = gen.cached_tokens
        self.state.metrics.record_usage(self.model.name, {"plain": u}, 0)
        self.state.metrics.latency.labels(self.model.name).observe(time.monotonic() - self.t0)
        return sse.usage_block(u)

    def _error(self, e: BaseException) -> APIError:
        from engine.backends.base import ContextOverflowError
        from engine.cancel import Cancelled

        if isinstance(e, ContextOverflowError):
            n_ctx = self.model.backend.info.n_ctx
            return APIError(400, str(e), CONTEXT, code=400, extra={"n_prompt_tokens": e.prompt_tokens, "n_ctx": n_ctx})
        if isinstance(e, Cancelled):
            return APIError(503, "the request was cancelled (the server is shutting down)", UNAVAILABLE, code=503)
        _log.error("plain completion failed", exc_info=e, extra={"fields": {"run": self.cid, "model": self.model.name}})
        return APIError(500, f"the model failed: {type(e).__name__}: {e}", SERVER, code="backend_error")

    async def answer(self) -> Response:
        watcher = asyncio.create_task(watch_disconnect(self.request, self.token, self.cid))
        done = False
        try:
            if not await self._start():
                raise APIError(503, "the request was cancelled before it started", UNAVAILABLE, code=503)
            kind, val = await self.queue.get()
            done = True
            if kind == "error":
                raise self._error(val)
        finally:
            watcher.cancel()
            if not done:
                self.token.cancel("cancelled")  # the handler itself was cancelled (shutdown): stop the model too
        reason = "length" if val.finish_reason == "length" else "stop"
        c = self.creq
        body = sse.completion_body(
            c.route, self.cid, self.model.name, self.created, val.text, reason, self._record(val)
        )
        return JSONResponse(body)

    async def stream(self) -> AsyncIterator[ServerSentEvent]:
        route, cid, name, created = self.creq.route, self.cid, self.model.name, self.created
        finished = False
        try:
            if not await self._start():
                return
            yield sse.data(sse.chunk(route, cid, name, created, role="assistant", content=""))
            while (item := await self.queue.get())[0] == "text":
                if item[1]:
                    yield sse.data(sse.chunk(route, cid, name, created, content=item[1]))
            kind, val = item
            if kind == "error":
                err = self._error(val)
                log_error(self.request, err, cid)
                yield sse.data(err.body())
            else:
                reason = "length" if val.finish_reason == "length" else "stop"
                yield sse.data(sse.chunk(route, cid, name, created, finish_reason=reason))
                usage = self._record(val)
                if self.creq.include_usage:
                    yield sse.data(sse.usage_chunk(route, cid, name, created, usage, {}))
            yield sse.DONE
            finished = True
        finally:  # sse-starlette ends the stream when the client goes away: stop the model too
            if not finished:
                self.token.cancel("cancelled")
