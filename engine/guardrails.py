"""Guardrails enforced in code: one thread-safe budget that a run and all its children draw from.

Why one object: an RLM fans out (batched sub-calls, child RLMs on threads), and limits only hold if every draw goes
through the same counters under one lock *before* the work starts. Each refusal raises :class:`GuardrailError`
whose message is written for the root model to read and react to ("split the prompt", "aggregate in code"); a
``fatal`` refusal also marks the budget exhausted so the loop ends the run with that finish reason.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Limits:
    """Every guardrail with its default. Any field can be overridden: ``RLM(..., max_root_turns=5)``."""

    max_root_turns: int = 12  # root model turns per RLM (each child RLM gets its own, drawn from the shared pool)
    max_total_root_turns: int = 40  # root turns across the parent and all children
    max_sub_calls: int = 200  # llm_query prompts + rlm_query calls, whole run including children
    max_sub_calls_per_cell: int = 128  # sub-call prompts one cell may make
    max_batch_width: int = 32  # prompts in one llm_query_batched call
    max_depth: int = 1  # rlm_query nesting: depth >= max_depth falls back to llm_query
    max_tokens_per_model: int = 2_000_000  # prompt + completion tokens per model name, whole run
    max_wall_s: float = 600.0  # wall clock of the whole run, children included
    cell_cpu_s: float = 20.0  # CPU seconds per cell (sandbox)
    cell_memory_bytes: int = 512 * 1024 * 1024  # linear memory per sandbox
    max_output_chars: int = 2000  # cell output shown to the root (head + tail, true length stated)
    max_sub_prompt_tokens: int | None = None  # per sub-call prompt; None: worker n_ctx - sub_max_tokens - margin
    root_max_tokens: int = 384  # tokens per root reply
    sub_max_tokens: int = 256  # default tokens per worker reply (a cell may ask for fewer)
    max_errors: int = 5  # consecutive failing cells before the run stops
    max_no_code: int = 3  # consecutive replies without code before the run stops
    max_repeats: int = 1  # repeated cells/outputs tolerated after a warning before the run stops

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


LIMIT_FIELDS = frozenset(Limits.__dataclass_fields__)


class GuardrailError(RuntimeError):
    """A limit refused some work. ``reason`` is the finish reason if it ends the run; ``fatal`` says whether it does.

    The message goes verbatim to the model (as the exception text inside its cell), so it says what to do next.
    """

    def __init__(self, reason: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.fatal = fatal


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    latency_s: float = 0.0

    def add(self, prompt: int, completion: int, cached: int = 0, latency: float = 0.0, calls: int = 1) -> None:
        self.calls += calls
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cached_tokens += cached
        self.latency_s += latency

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class CellCounter:
    """Sub-calls made by one cell (the per-cell limit)."""

    sub_calls: int = 0


@dataclass
class Budget:
    """Shared, thread-safe counters for one top-level run and its children."""

    limits: Limits
    started: float = field(default_factory=time.monotonic)
    root_turns: int = 0
    sub_calls: int = 0
    usage_by_model: dict[str, Usage] = field(default_factory=dict)
    usage_by_depth: dict[int, Usage] = field(default_factory=dict)
    exhausted: GuardrailError | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- queries -------------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining_s(self) -> float:
        return self.limits.max_wall_s - self.elapsed()

    def _fail(self, err: GuardrailError) -> GuardrailError:
        if err.fatal and self.exhausted is None:
            self.exhausted = err
        return err

    def check_time(self) -> None:
        if self.elapsed() > self.limits.max_wall_s:
            with self._lock:
                raise self._fail(
                    GuardrailError(
                        "max_wall_s",
                        f"time limit reached: the run has used {self.elapsed():.0f} s of its "
                        f"{self.limits.max_wall_s:.0f} s; no more model calls. Call FINAL with your best answer.",
                        fatal=True,
                    )
                )

    def check_tokens(self, model: str) -> None:
        with self._lock:
            used = self.usage_by_model.get(model, Usage()).total_tokens
            if used >= self.limits.max_tokens_per_model:
                raise self._fail(
                    GuardrailError(
                        "max_tokens",
                        f"token budget of model {model!r} is used up ({used} of "
                        f"{self.limits.max_tokens_per_model} tokens). Call FINAL with your best answer.",
                        fatal=True,
                    )
                )

    # -- draws ---------------------------------------------------------------------------------------------
    def take_root_turn(self, turns_so_far: int) -> None:
        """Before each root turn of one RLM (``turns_so_far`` counts that RLM's own turns)."""
        self.check_time()
        with self._lock:
            if turns_so_far >= self.limits.max_root_turns:
                raise GuardrailError(
                    "max_root_turns", f"root turn limit reached ({self.limits.max_root_turns})", fatal=True
                )
            if self.root_turns >= self.limits.max_total_root_turns:
                raise self._fail(
                    GuardrailError(
                        "max_root_turns",
                        f"root turn limit of the whole run reached ({self.limits.max_total_root_turns})",
                        fatal=True,
                    )
                )
            self.root_turns += 1

    def check_batch_width(self, n: int) -> None:
        width = self.limits.max_batch_width
        if n > width:
            raise GuardrailError(
                "max_batch_width",
                f"llm_query_batched got {n} prompts but at most {width} are allowed per call; "
                f"split the list into groups of {width}.",
            )

    def take_sub_calls(self, n: int, cell: CellCounter | None, *, batch: bool = False) -> None:
        """Reserve ``n`` sub-calls before making them; raises without reserving anything if a limit says no."""
        lim = self.limits
        self.check_time()
        if batch:
            self.check_batch_width(n)
        with self._lock:
            if cell is not None and cell.sub_calls + n > lim.max_sub_calls_per_cell:
                raise GuardrailError(
                    "max_sub_calls_per_cell",
                    f"this cell asked for {cell.sub_calls + n} sub-calls but one cell may make at most "
                    f"{lim.max_sub_calls_per_cell}; use bigger chunks (fewer prompts) or continue in the next cell.",
                )
            if self.sub_calls + n > lim.max_sub_calls:
                left = lim.max_sub_calls - self.sub_calls
                raise self._fail(
                    GuardrailError(
                        "max_sub_calls",
                        f"sub-call budget exhausted: {self.sub_calls} of {lim.max_sub_calls} used, {left} left, "
                        f"{n} requested. Aggregate what you already have in code and call FINAL with your answer.",
                        fatal=left <= 0,
                    )
                )
            self.sub_calls += n
            if cell is not None:
                cell.sub_calls += n

    def record(
        self,
        model: str,
        depth: int,
        prompt: int,
        completion: int,
        cached: int = 0,
        latency: float = 0.0,
        calls: int = 1,
    ) -> None:
        with self._lock:
            self.usage_by_model.setdefault(model, Usage()).add(prompt, completion, cached, latency, calls)
            self.usage_by_depth.setdefault(depth, Usage()).add(prompt, completion, cached, latency, calls)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "root_turns": self.root_turns,
                "sub_calls": self.sub_calls,
                "elapsed_s": round(self.elapsed(), 3),
                "tokens": {m: u.total_tokens for m, u in self.usage_by_model.items()},
            }


def split_limits(kwargs: dict[str, Any]) -> tuple[Limits, dict[str, Any]]:
    """Separate guardrail overrides from other keyword arguments; unknown names are returned untouched."""
    lim = {k: v for k, v in kwargs.items() if k in LIMIT_FIELDS}
    rest = {k: v for k, v in kwargs.items() if k not in LIMIT_FIELDS}
    return Limits(**lim), rest
