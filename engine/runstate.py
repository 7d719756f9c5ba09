"""What the turn loop, the cells and the rescue use of a run: a Protocol, so that they need no import of
:mod:`engine.run` (which builds them), not even a type-only one.

:class:`engine.run.Run` satisfies it; mypy checks that where the run hands itself over.
"""

from __future__ import annotations

from typing import Any, Protocol

from engine.backends.base import Backend, Generation, Message, SamplingParams
from engine.environment import Environment
from engine.guardrails import Budget, Limits
from engine.history import History
from engine.result import RunEnd
from engine.subcalls import SubCalls


class Models(Protocol):
    """The parts of :class:`engine.rlm.RLM` a run's turns use."""

    @property
    def root(self) -> Backend: ...

    @property
    def sub_calls(self) -> bool: ...

    @property
    def fallback_answer(self) -> bool: ...


class RunState(Protocol):
    id: str
    question: str
    budget: Budget
    lim: Limits
    subs: SubCalls
    evidence: list[str]  # what the cells printed (a stopped run's answer must come from here)
    last_output: str
    restored: list[str]  # built-in helpers a cell rebound (the sandbox put them back)
    timings: dict[str, float]

    @property
    def rlm(self) -> Models: ...

    def emit(self, event: str, **fields: Any) -> None: ...

    def end(self, answer: str, reason: str, partial: bool, t_start: float, error: str | None = None) -> RunEnd: ...

    def chat(self, messages: list[Message], params: SamplingParams, session: str | None) -> Generation: ...

    def root_params(
        self, stop: tuple[str, ...], max_tokens: int | None = None, grammar: str | None = None
    ) -> SamplingParams: ...

    def emit_turn(self, tid: str, turn: int | str, gen: Generation, *, has_code: bool) -> None: ...

    def compact(self, env: Environment, hist: History) -> None: ...
