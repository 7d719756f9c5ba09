"""Turning an OpenAI request into an RLM call: context and task, limits, sampling, and the answer's shape.

Why these rules: a client written for a plain LLM sends either a chat history or one huge user message. The last
user message is the task and everything before it (system prompt, earlier turns, uploaded contexts) is the context
the RLM explores; a last message too long to be a question (a document with its question) becomes the context
itself, and the engine treats the whole prompt as the task. Request limits may only tighten the served model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from server.contexts import ContextStore
from server.errors import CONTEXT, NOT_FOUND, APIError, bad_request
from server.registry import RLMModel, limit_fields
from server.schemas import CompletionRequest

if TYPE_CHECKING:
    from engine.environment import PromptSource
    from engine.guardrails import Limits

# A last user message longer than this is a "document plus question", not a question.
MAX_QUESTION_CHARS = 4000
# Limits a request may lower but never raise above the served model's value.
_TIGHTEN_ONLY_PREFIX = "max_"
_TIGHTEN_ONLY = {"cell_cpu_s", "cell_memory_bytes", "root_max_tokens", "sub_max_tokens"}
_SAMPLING = {"temperature": "root_temperature", "top_p": "root_top_p", "seed": "root_seed"}


def render_history(msgs: list[Any]) -> str:
    return "\n\n".join(f"[{m.role}]\n{m.content}" for m in msgs)


def build_inputs(
    creq: CompletionRequest, contexts: ContextStore, max_chars: int, *, session_turn: int | None = None
) -> tuple[PromptSource | None, str | None, str]:
    """``(prompt, question, preview)`` for ``RLM.completion``; raises APIError for a request that cannot run.

    In a session (``session_turn`` is the number of earlier requests) the last user message is always the
    question; the first request fixes the context (its documents, or the message itself when there are none) and
    later ones send ``prompt=None``: the REPL already holds the context and the variables.
    """
    if session_turn is not None:
        return _session_inputs(creq, contexts, max_chars, session_turn)
    docs: list[str | Path] = _uploaded(creq, contexts)
    msgs = creq.messages
    question: str | None
    if creq.route == "text":
        task = msgs[0].content
        before: list[Any] = []
        question = (creq.question or "").strip() or None
        if question is not None:
            docs.append(task)
            task = ""
    else:
        last = max((i for i, m in enumerate(msgs) if m.role == "user"), default=None)
        if last is None:
            raise bad_request("an RLM model needs a user message: the last user message is the task", "messages")
        if last != len(msgs) - 1:
            raise bad_request("the last message must be the user's (the task)", "messages")
        task = msgs[last].content
        before = msgs[:last]
        question = None
        if before:
            docs.append(render_history(before))
    if creq.route == "chat" or creq.question is None:
        if len(task) > MAX_QUESTION_CHARS or not docs:
            if task.strip():
                docs.append(task)  # the message is the whole prompt (document + question): the engine's task
            question = None
        else:
            question = task.strip() or None
    if not docs or all(isinstance(d, str) and not d.strip() for d in docs):
        raise bad_request("the prompt is empty: send a non-empty user message", "messages")
    prompt = _joined(docs, contexts, max_chars)
    preview = question or (task[:300] if task else "(uploaded context)")
    return prompt, question, preview


def _joined(docs: list[str | Path], contexts: ContextStore, max_chars: int) -> PromptSource:
    """The prompt ``RLM.completion`` takes (one document, or a list of texts); 400 when they exceed the maximum."""
    total = sum(contexts_chars(d, contexts) for d in docs)
    if total > max_chars:
        raise APIError(
            400,
            f"request ({total:,} characters of context) exceeds the configured maximum context "
            f"({max_chars:,} characters)",
            CONTEXT,
            code="context_too_large",
            extra={"n_prompt_chars": total, "max_context_chars": max_chars},
        )
    return docs[0] if len(docs) == 1 else [d.read_text(encoding="utf-8") if isinstance(d, Path) else d for d in docs]


def _session_inputs(
    creq: CompletionRequest, contexts: ContextStore, max_chars: int, turn: int
) -> tuple[PromptSource | None, str | None, str]:
    msgs = creq.messages
    if creq.route == "chat" and msgs[-1].role != "user":
        raise bad_request("the last message must be the user's (the task)", "messages")
    question = (creq.question if creq.route == "text" and creq.question else msgs[-1].content).strip()
    if not question:
        raise bad_request("the task is empty: send a non-empty user message", "messages")
    if turn > 0:
        return None, question, question
    docs: list[str | Path] = _uploaded(creq, contexts)
    before = msgs[:-1] if creq.route == "chat" else ([msgs[0]] if creq.question else [])
    if before:
        docs.append(render_history(before) if creq.route == "chat" else before[0].content)
    if not docs:
        docs.append(question)
    return _joined(docs, contexts, max_chars), question, question


def contexts_chars(d: str | Path, contexts: ContextStore) -> int:
    if isinstance(d, Path):
        for item in contexts.items():
            if item.path == d:
                return item.chars
        return d.stat().st_size
    return len(d)


def build_limits(creq: CompletionRequest, model: RLMModel) -> Limits | None:
    """The run's ``Limits``: the model's with the request's overrides and sampling fields, validated once here.

    The engine takes the returned object as is (``Limits.merged`` keeps a ``Limits``), so nothing is validated twice.
    """
    known = limit_fields()
    req = dict(creq.limits)
    unknown = sorted(set(req) - set(known))
    if unknown:
        raise bad_request(f"limits: unknown limit(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}", "limits")
    req.update({limit: getattr(creq, f) for f, limit in _SAMPLING.items() if getattr(creq, f) is not None})
    if not req:
        return None
    for name, value in req.items():
        tighten = name.startswith(_TIGHTEN_ONLY_PREFIX) or name in _TIGHTEN_ONLY
        cap = model.effective_limit(name)
        if tighten and isinstance(value, (int, float)) and isinstance(cap, (int, float)) and value > cap:
            raise bad_request(
                f"limits.{name}: {value} is above this model's limit of {cap}; a request may only lower it",
                f"limits.{name}",
            )
    try:
        return model.rlm.limits.merged(req)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        desc = getattr(known.get(loc), "description", None)
        hint = f" ({desc})" if desc else ""
        sampling = {v: k for k, v in _SAMPLING.items()}.get(loc)
        if sampling is not None and getattr(creq, sampling) is not None:  # the client sent `seed`, not a limit
            raise bad_request(f"{sampling}: {err.get('msg')}", sampling) from None
        raise bad_request(f"limits.{loc}: {err.get('msg')}{hint}", f"limits.{loc}") from None


def shape_answer(text: str, stop: tuple[str, ...], max_tokens: int | None, count: Any) -> tuple[str, str | None]:
    """Apply ``stop`` and ``max_tokens`` to an RLM's answer: ``(text, "stop" | "length" | None)``."""
    cut: str | None = None
    if stop:
        hits = [i for i in (text.find(s) for s in stop) if i >= 0]
        if hits:
            text, cut = text[: min(hits)], "stop"
    if max_tokens is not None and text:
        try:
            n = count(text)
        except Exception:  # noqa: BLE001 - a closed tokenizer: estimate
            n = (len(text) + 3) // 4
        if n > max_tokens:
            lo, hi = 0, len(text)
            while lo < hi:  # longest prefix within max_tokens
                mid = (lo + hi + 1) // 2
                try:
                    fits = count(text[:mid]) <= max_tokens
                except Exception:  # noqa: BLE001
                    fits = (mid + 3) // 4 <= max_tokens
                lo, hi = (mid, hi) if fits else (lo, mid - 1)
            text, cut = text[:lo], "length"
    return text, cut


def _uploaded(creq: CompletionRequest, contexts: ContextStore) -> list[str | Path]:
    """The files of the request's ``context_id``s, in order; 404 for one that was never uploaded (or expired)."""
    docs: list[str | Path] = []
    for cid in creq.context_ids:
        item = contexts.get(cid) if isinstance(cid, str) else None
        if item is None:
            raise APIError(
                404,
                f"context_id {cid!r} does not exist (upload it with POST /v1/contexts)",
                NOT_FOUND,
                param="context_id",
                code="context_not_found",
            )
        docs.append(item.path)
    return docs
