"""The contract between the RLM loop and whatever runs a model.

The loop only ever talks to a :class:`Backend`. Two shapes of call matter to an RLM:

* ``chat`` — one conversation that grows turn by turn (the root). A ``session`` id lets a backend keep that
  conversation's KV cache alive between turns instead of re-reading the whole history every time.
* ``batch`` — many independent prompts that share one system prompt (the worker sub-calls). Backends are expected
  to compute the shared prefix once and run the prompts as parallel sequences.

Failures of single prompts inside a batch are reported per item (``Generation.error``) so one bad chunk never
costs the other results; only failures that make the whole backend unusable raise.

Serving many runs at once (a long-lived server) adds four things to every call, all optional:

* ``cancel`` — an :class:`engine.cancel.CancelToken` (anything with ``is_set()`` and ``on_cancel(cb)``). When it
  fires, the request is dropped whether it is queued or decoding, its resources are freed, and the call raises
  :class:`engine.cancel.Cancelled` at once (at the latest within one decode step);
* ``owner`` — the top-level run id. Backends that schedule (llama) admit requests round-robin by owner, chat (root
  turns) before batch items, so one run's wide batch cannot stall another run's root turn;
* ``on_text`` — called with each new piece of text as tokens are sampled (streaming), in the caller's thread;
* ``SamplingParams.grammar`` — a GBNF grammar (root rule ``root``) that constrains sampling;
* ``SamplingParams.choices`` — the reply is one of a few strings. A backend that can read the model's
  next-token distribution scores them instead of generating (one prefill, no decode step) and reports each
  choice's probability in ``Generation.choice_logprobs``, which lets a caller calibrate a small model's bias across
  many items; one that cannot constrains the reply to the choices (:func:`choice_grammar`) and reports None.

``healthy`` turns False when the backend can no longer serve (closed, or its decode thread died); every call then
raises :class:`BackendError` with the reason instead of hanging.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from engine.cancel import CancelToken

Role = Literal["system", "user", "assistant"]
# "length": cut at ``max_tokens`` (the engine reports such a reply as cut)
FinishReason = Literal["stop", "length", "error"]
TextCallback = Callable[[str], None]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class SamplingParams:
    """Per-call generation settings. Greedy (temperature 0) by default: RLM sub-calls want reproducibility."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # GBNF grammar (llama.cpp syntax, root rule ``root``) applied in the sampler chain; None: unconstrained.
    # An invalid grammar is a BackendError at call time. Costs sampling time (checked over the whole vocabulary).
    grammar: str | None = None
    # The reply is one of these (2 or more distinct strings); see the module docstring. Overrides ``grammar``.
    choices: tuple[str, ...] = ()


def choice_grammar(choices: Sequence[str]) -> str:
    """A GBNF grammar whose only sentences are ``choices`` (JSON string escapes are valid GBNF literals)."""
    return "root ::= " + " | ".join(json.dumps(c) for c in choices)


@dataclass(frozen=True)
class Generation:
    """One finished completion, with the token accounting the guardrails and traces need."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # prompt tokens whose KV state was reused rather than computed (shared prefix, session history)
    cached_tokens: int = 0
    latency_s: float = 0.0
    error: str | None = None
    # with ``SamplingParams.choices``: each choice's log-probability (in order, normalised over the choices) where
    # the backend scored them; None where it generated the reply
    choice_logprobs: tuple[float, ...] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class BackendError(RuntimeError):
    """A backend cannot serve a request; the message is written for the person (or root model) reading it."""


class ContextOverflowError(BackendError):
    """A prompt does not fit the space left in the model's context.

    Carries the numbers so the loop can tell the root model exactly how much to shrink a sub-call prompt.
    """

    def __init__(self, prompt_tokens: int, available_tokens: int, what: str = "prompt") -> None:
        self.prompt_tokens = prompt_tokens
        self.available_tokens = available_tokens
        over = prompt_tokens - available_tokens
        super().__init__(
            f"{what} is {prompt_tokens} tokens but only {available_tokens} fit in the model's context "
            f"({over} tokens too many); send a shorter {what}"
        )


@dataclass(frozen=True)
class BackendInfo:
    """What a caller may need to know about the model behind a backend."""

    name: str  # model name or path as the user gave it
    backend: str  # "llama", "openai", "scripted", ...
    n_ctx: int  # tokens of context available to one sequence
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """What the RLM loop needs from a model. Implementations must be safe to call from several threads."""

    @property
    def info(self) -> BackendInfo: ...

    @property
    def healthy(self) -> bool:
        """False once the backend is closed or can no longer serve (e.g. its decode thread died)."""
        ...

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
        """Complete one conversation. With a ``session`` id the backend may keep its KV cache for the next turn.

        Raises :class:`ContextOverflowError` when the conversation does not fit, :class:`engine.cancel.Cancelled`
        when ``cancel`` fires. ``on_text`` receives the reply's text piece by piece as it is generated.
        """
        ...

    def batch(
        self,
        system: str,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
        owner: str | None = None,
    ) -> list[Generation]:
        """Complete ``prompts`` (user messages) that share one ``system`` prompt. Results are in request order.

        A prompt that cannot be served (too long, ...) yields a Generation with ``error`` set and
        ``finish_reason="error"``; the others still complete. ``cancel`` drops every prompt of the batch and
        raises :class:`engine.cancel.Cancelled`.
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model (no special tokens added)."""
        ...

    def end_session(self, session: str) -> None:
        """Free whatever a ``chat`` session kept (its KV sequence). Unknown ids are ignored."""
        ...

    def close(self) -> None:
        """Release the model. Idempotent; every later call (token counts included) raises BackendError."""
        ...
