"""Server-Sent Events in OpenAI's chunk format, and the response bodies of both completion routes.

Why its own module: the exact shapes (``chat.completion.chunk`` with ``delta``, ``usage: null`` on every chunk but
the usage chunk, ``data: [DONE]``) are what the official SDKs parse; keeping them in one place keeps them right.
The framing, the keep-alive pings and the stop on a client's disconnect are sse-starlette's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

DONE = ServerSentEvent("[DONE]")


def event_source(
    events: AsyncIterator[ServerSentEvent], ping_s: float, headers: dict[str, str] | None = None
) -> EventSourceResponse:
    """A ``text/event-stream`` response with ``: ping`` comments every ``ping_s`` (llama-server sends them too)."""
    return EventSourceResponse(
        events,
        headers={"Cache-Control": "no-cache", **(headers or {})},
        ping=ping_s,
        sep="\n",
        ping_message_factory=lambda: ServerSentEvent(comment="ping"),
    )


def data(obj: Any) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


def comment(text: str) -> ServerSentEvent:
    """An SSE comment line (clients ignore it): outcore progress."""
    return ServerSentEvent(comment=text.replace("\n", " ").replace("\r", " "))


def usage_block(total: dict[str, Any] | None) -> dict[str, Any]:
    t = total or {}
    prompt = int(t.get("prompt_tokens", 0) or 0)
    completion = int(t.get("completion_tokens", 0) or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(t.get("cached_tokens", 0) or 0)},
    }


def chunk(
    route: str,
    cid: str,
    model: str,
    created: int,
    *,
    content: str | None = None,
    role: str | None = None,
    finish_reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if route == "chat":
        delta: dict[str, Any] = {}
        if role is not None:
            delta["role"] = role
        if content is not None:
            delta["content"] = content
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
    else:
        choice = {"index": 0, "text": content or "", "logprobs": None, "finish_reason": finish_reason}
        obj = {"id": cid, "object": "text_completion", "created": created, "model": model}
    obj.update(choices=[choice], usage=None)
    if extra:
        obj.update(extra)
    return obj


def usage_chunk(route: str, cid: str, model: str, created: int, usage: dict[str, Any], extra: dict[str, Any]) -> dict:
    obj = chunk(route, cid, model, created)
    obj["choices"] = []
    obj["usage"] = usage
    obj.update(extra)
    return obj


def completion_body(
    route: str,
    cid: str,
    model: str,
    created: int,
    text: str,
    finish_reason: str,
    usage: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if route == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        obj: dict[str, Any] = {"id": cid, "object": "chat.completion", "created": created, "model": model}
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        obj = {"id": cid, "object": "text_completion", "created": created, "model": model}
    obj.update(choices=[choice], usage=usage)
    if extra:
        obj.update(extra)
    return obj


_PROGRESS_KEYS = (
    "event",
    "id",
    "parent",
    "depth",
    "turn",
    "kind",
    "n",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "latency_s",
    "duration_s",
    "error",
    "finish_reason",
    "has_code",
    "sub_calls",
)


def progress(ev: dict[str, Any]) -> ServerSentEvent:
    """A compact SSE comment for one engine event (no code or output: those are on /v1/runs/{id})."""
    small = {k: ev[k] for k in _PROGRESS_KEYS if k in ev and ev[k] is not None}
    return comment("outcore " + json.dumps(small, ensure_ascii=False, separators=(",", ":"), default=str))
