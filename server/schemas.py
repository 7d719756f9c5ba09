"""Request bodies of the OpenAI routes, validated into one :class:`CompletionRequest`.

Why a hand-rolled first pass over pydantic: clients send many optional fields; each one outcore cannot honour
(``n > 1``, ``logprobs``, tools, penalties) must be refused by name with 400, while fields that change nothing
(``user``, ``metadata``) are accepted. pydantic checks types; the messages say which field and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.errors import bad_request


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(None, ge=1)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | int | None = None
    top_logprobs: int | None = None
    user: str | None = None
    # outcore's extra fields (the official client sends them with extra_body=...)
    context_id: str | list[str] | None = None
    session_id: str | None = None
    limits: dict[str, Any] | None = None


class _ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class ChatBody(_Body):
    messages: list[_ChatMessage]
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None


class CompletionBody(_Body):
    prompt: str | list[str] | list[int] | list[list[int]]
    question: str | None = None  # outcore: the task, when the prompt is only the context
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = None


@dataclass(frozen=True)
class Msg:
    role: str  # system | user | assistant
    content: str


@dataclass
class CompletionRequest:
    """What a chat or text completion asks for, independent of the route it came in on."""

    route: Literal["chat", "text"]
    model: str
    messages: list[Msg]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    seed: int | None
    stop: tuple[str, ...]
    context_ids: list[str]
    session_id: str | None
    limits: dict[str, Any]
    question: str | None = None  # text route: an explicit question
    extra: dict[str, Any] = field(default_factory=dict)


def _loc(err: Any) -> str:
    return ".".join(str(x) for x in err.get("loc", ()))


def _raise_validation(e: ValidationError) -> None:
    err = e.errors()[0]
    loc = _loc(err)
    msg = err.get("msg", "invalid value")
    if err.get("type") == "missing":
        raise bad_request(f"missing required field '{loc}'", loc) from None
    raise bad_request(f"{loc}: {msg}" if loc else str(msg), loc or None) from None


def _text_of(content: str | list[dict[str, Any]] | None, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for i, part in enumerate(content):
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise bad_request(
                f"{where}.content[{i}]: only text parts are supported (got type {part.get('type')!r})",
                f"{where}.content",
            )
        parts.append(part["text"])
    return "".join(parts)


def _common(body: _Body) -> dict[str, Any]:
    if body.n is not None and body.n != 1:
        raise bad_request("n: only n = 1 is supported", "n")
    if body.logprobs or body.top_logprobs:
        raise bad_request("logprobs are not supported", "logprobs")
    for name in ("presence_penalty", "frequency_penalty"):
        v = getattr(body, name)
        if v not in (None, 0, 0.0):
            raise bad_request(f"{name} is not supported (only 0)", name)
    stop: tuple[str, ...] = ()
    if isinstance(body.stop, str):
        stop = (body.stop,) if body.stop else ()
    elif isinstance(body.stop, list):
        if len(body.stop) > 4:
            raise bad_request("stop: at most 4 sequences", "stop")
        if any(not s for s in body.stop):
            raise bad_request("stop: sequences must not be empty", "stop")
        stop = tuple(body.stop)
    so = body.stream_options or {}
    if so and not body.stream:
        raise bad_request("stream_options is only allowed with stream = true", "stream_options")
    unknown_so = set(so) - {"include_usage", "continuous_usage_stats"}
    if unknown_so:
        raise bad_request(f"stream_options: unknown field(s) {', '.join(sorted(unknown_so))}", "stream_options")
    if "include_usage" in so and not isinstance(so["include_usage"], bool):
        raise bad_request("stream_options.include_usage: must be a boolean", "stream_options.include_usage")
    if body.max_tokens is not None and body.max_completion_tokens is not None:
        if body.max_tokens != body.max_completion_tokens:
            raise bad_request("give max_tokens or max_completion_tokens, not both", "max_tokens")
    ctx = body.context_id
    ids = [ctx] if isinstance(ctx, str) else list(ctx or [])
    return {
        "model": body.model,
        "stream": body.stream,
        "include_usage": bool(so.get("include_usage", False)),
        "max_tokens": body.max_tokens or body.max_completion_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "seed": body.seed,
        "stop": stop,
        "context_ids": ids,
        "session_id": body.session_id,
        "limits": dict(body.limits or {}),
    }


def parse_chat(data: Any) -> CompletionRequest:
    if not isinstance(data, dict):
        raise bad_request("the request body must be a JSON object")
    try:
        body = ChatBody.model_validate(data)
    except ValidationError as e:
        _raise_validation(e)
        raise  # unreachable
    if not body.messages:
        raise bad_request("messages must not be empty", "messages")
    if body.tools or body.functions or body.tool_choice not in (None, "none"):
        raise bad_request("tools and function calling are not supported", "tools")
    rf = body.response_format
    if rf and rf.get("type") not in (None, "text"):
        raise bad_request("response_format: only {'type': 'text'} is supported", "response_format")
    msgs: list[Msg] = []
    for i, m in enumerate(body.messages):
        where = f"messages[{i}]"
        if m.role in ("tool", "function"):
            raise bad_request(f"{where}.role: tool messages are not supported", f"{where}.role")
        role = "system" if m.role == "developer" else m.role
        msgs.append(Msg(role, _text_of(m.content, where)))
    return CompletionRequest(route="chat", messages=msgs, **_common(body))


def parse_text(data: Any) -> CompletionRequest:
    if not isinstance(data, dict):
        raise bad_request("the request body must be a JSON object")
    try:
        body = CompletionBody.model_validate(data)
    except ValidationError as e:
        _raise_validation(e)
        raise
    p = body.prompt
    if isinstance(p, list):
        if len(p) != 1 or not isinstance(p[0], str):
            raise bad_request("prompt: give one string (token arrays and several prompts are not supported)", "prompt")
        p = p[0]
    assert isinstance(p, str)
    if body.echo or body.suffix or (body.best_of not in (None, 1)):
        raise bad_request("echo, suffix and best_of are not supported", "echo")
    return CompletionRequest(route="text", messages=[Msg("user", p)], question=body.question, **_common(body))
