"""A deterministic :class:`~engine.backends.base.Backend` whose replies come from a script.

Why: the RLM loop must be testable without loading a model. Root replies (``chat``) come from a list (consumed in
order) or a function of the messages; worker replies (``batch``) come from a function of the prompt, a dict of
substring -> reply, or a fixed string. Token counts are a cheap whitespace estimate so guardrails see real numbers.

It follows the whole protocol so service-level behaviour is testable without a model: ``cancel`` is honoured
before a call and during its ``delay_s`` (the call raises :class:`engine.cancel.Cancelled` at once), ``on_text``
receives the reply word by word, ``owner`` is recorded, a ``grammar`` must at least define ``root`` (it is not
applied: scripted replies are what they are), and every call after ``close()`` raises BackendError. With
``SamplingParams.choices`` a reply written as a JSON object of choice -> probability is served like a
backend that scores choices (the most probable choice, ``choice_logprobs`` set); any other reply is returned as is.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from engine.backends.base import (
    BackendError,
    BackendInfo,
    ContextOverflowError,
    Generation,
    Message,
    SamplingParams,
    TextCallback,
)
from engine.cancel import Cancelled, raise_if_cancelled

if TYPE_CHECKING:
    from engine.cancel import CancelToken

RootScript = Sequence[str] | Callable[[Sequence[Message]], str]
WorkerScript = str | Mapping[str, str] | Callable[[str], str]


def _approx_tokens(text: str) -> int:
    # ~4 characters per token, like real BPE tokenizers on English prose; never 0 for non-empty text
    return (len(text) + 3) // 4


def _scored(reply: str, choices: Sequence[str]) -> tuple[float, ...] | None:
    """The choices' log-probabilities a reply like ``{"yes": 0.8, "no": 0.2}`` scripts (normalised), else None."""
    if not choices or not reply.startswith("{"):
        return None
    try:
        probs = json.loads(reply)
    except json.JSONDecodeError:
        return None
    weights = [max(float(probs.get(c, 0.0)), 1e-9) for c in choices]
    total = sum(weights)
    return tuple(math.log(w / total) for w in weights)


class ScriptedBackend:
    """A Backend for tests: scripted root replies, scripted worker replies, exact call records.

    ``root`` is a list of replies (an exhausted list raises BackendError so a runaway loop fails loudly) or a
    function ``messages -> reply``. ``worker`` maps each batch prompt to a reply. ``n_ctx`` is enforced with the
    same approximate token count that :meth:`count_tokens` reports. ``delay_s`` sleeps per call (wall-clock tests).
    """

    def __init__(
        self,
        root: RootScript = (),
        worker: WorkerScript = "ok",
        *,
        name: str = "scripted",
        n_ctx: int = 32768,
        delay_s: float = 0.0,
    ) -> None:
        self._root = root
        self._root_i = 0
        self._worker = worker
        self._info = BackendInfo(name=name, backend="scripted", n_ctx=n_ctx)
        self._delay = delay_s
        self._lock = threading.Lock()
        self._closed = False
        self.chat_calls: list[list[Message]] = []
        self.batch_calls: list[tuple[str, list[str]]] = []
        self.sessions_ended: list[str] = []
        self.owners: list[str | None] = []  # the owner of every call, in order

    @property
    def info(self) -> BackendInfo:
        return self._info

    @property
    def healthy(self) -> bool:
        return not self._closed

    def count_tokens(self, text: str) -> int:
        self._check_open()
        return _approx_tokens(text)

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("backend is closed")

    def _begin(self, params: SamplingParams, cancel: CancelToken | None, owner: str | None) -> None:
        """What every call checks first: not cancelled, a plausible grammar; records the owner."""
        raise_if_cancelled(cancel)
        if params.grammar is not None and not re.search(r"(?m)^\s*root\s*::=", params.grammar):
            raise BackendError("invalid grammar: a GBNF grammar needs a rule named 'root'")
        with self._lock:
            self.owners.append(owner)

    def _next_root(self, messages: Sequence[Message]) -> str:
        if callable(self._root):
            return self._root(messages)
        with self._lock:
            if self._root_i >= len(self._root):
                raise BackendError(f"scripted root has no reply left (used {self._root_i})")
            reply = self._root[self._root_i]
            self._root_i += 1
        return reply

    def _sleep(self, cancel: CancelToken | None) -> None:
        """The scripted delay, cut short (raising Cancelled) when the call's cancel token fires."""
        if not self._delay:
            return
        if cancel is None:
            time.sleep(self._delay)
        elif cancel.wait(self._delay) or cancel.is_set():
            raise Cancelled(getattr(cancel, "reason", None) or "cancelled")

    def chat(
        self,
        messages: Sequence[Message],
        params: SamplingParams,
        *,
        session: str | None = None,
        cancel: CancelToken | None = None,
        owner: str | None = None,
        on_text: TextCallback | None = None,
    ) -> Generation:
        self._check_open()
        self._begin(params, cancel, owner)
        t0 = time.monotonic()
        prompt_tokens = sum(_approx_tokens(m.content) + 4 for m in messages)
        if prompt_tokens + params.max_tokens > self._info.n_ctx:
            raise ContextOverflowError(prompt_tokens, self._info.n_ctx - params.max_tokens, "conversation")
        with self._lock:
            self.chat_calls.append(list(messages))
        self._sleep(cancel)
        text = self._next_root(messages)
        scored = _scored(text, params.choices)
        if scored:
            text = params.choices[scored.index(max(scored))]
        if on_text is not None:
            for piece in re.findall(r"\S+\s*|\s+", text):  # word by word, like a real stream
                on_text(piece)
        return Generation(
            text=text,
            finish_reason="stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=_approx_tokens(text),
            latency_s=time.monotonic() - t0,
            choice_logprobs=scored,
        )

    def _worker_reply(self, prompt: str) -> str:
        w = self._worker
        if callable(w):
            return w(prompt)
        if isinstance(w, str):
            return w
        for key, reply in w.items():
            if key in prompt:
                return reply
        return ""

    def batch(
        self,
        system: str,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
        owner: str | None = None,
    ) -> list[Generation]:
        self._check_open()
        self._begin(params, cancel, owner)
        with self._lock:
            self.batch_calls.append((system, list(prompts)))
        self._sleep(cancel)
        out: list[Generation] = []
        sys_tokens = _approx_tokens(system)
        for p in prompts:
            t0 = time.monotonic()
            n = sys_tokens + _approx_tokens(p)
            if n + params.max_tokens > self._info.n_ctx:
                err = ContextOverflowError(n, self._info.n_ctx - params.max_tokens)
                out.append(Generation(text="", finish_reason="error", prompt_tokens=n, error=str(err)))
                continue
            text = self._worker_reply(p)
            scored = _scored(text, params.choices)
            out.append(
                Generation(
                    text=params.choices[scored.index(max(scored))] if scored else text,
                    finish_reason="stop",
                    prompt_tokens=n,
                    completion_tokens=_approx_tokens(text),
                    cached_tokens=sys_tokens if len(prompts) > 1 else 0,
                    latency_s=time.monotonic() - t0,
                    choice_logprobs=scored,
                )
            )
        return out

    def end_session(self, session: str) -> None:
        with self._lock:
            self.sessions_ended.append(session)

    def close(self) -> None:
        self._closed = True
