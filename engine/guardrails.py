"""Guardrails enforced in code: declared limits, and one thread-safe budget that a run and its children draw from.

Why one declaration: :class:`Limits` is a pydantic model, so its field bounds and descriptions are the single source
of truth for the Python API (types, defaults, validation), the CLI (flags and help text) and the server (request
validation and error messages). A negative or absurd limit is refused in all three the same way.

Why one budget object: an RLM fans out (batched sub-calls, child RLMs), and limits only hold if every draw goes
through the same counters under one lock *before* the work starts. Every draw also checks the run's
:class:`~engine.cancel.CancelToken`, which carries the wall-clock deadline, so a cancelled or expired run stops at
its next draw. Each refusal raises :class:`GuardrailError` whose message is written for the root model to read and
react to ("split the prompt", "aggregate in code"); a ``fatal`` refusal also marks the budget exhausted so the loop
ends the run with that finish reason.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.cancel import CancelToken

# Roles in per-role usage: the top-level root, roots of child runs (rlm_query), and every worker call.
ROLE_ROOT = "root"
ROLE_CHILD_ROOT = "child_root"
ROLE_WORKER = "worker"


class Limits(BaseModel):
    """Every guardrail with its default and its allowed range. Override any field: ``RLM(..., max_root_turns=5)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_root_turns: int = Field(
        12, ge=1, le=1000, description="root model turns per RLM run (each child run has its own)"
    )
    max_total_root_turns: int = Field(40, ge=1, le=10_000, description="root turns across a run and all its children")
    max_sub_calls: int = Field(
        200, ge=0, le=1_000_000, description="worker prompts and child runs in the whole run, children included"
    )
    max_sub_calls_per_cell: int = Field(128, ge=1, le=100_000, description="sub-call prompts one cell may make")
    max_batch_width: int = Field(32, ge=1, le=1024, description="prompts in one llm_query_batched call")
    max_depth: int = Field(1, ge=0, le=8, description="rlm_query nesting depth (deeper calls become llm_query)")
    max_tokens_per_model: int = Field(
        2_000_000, ge=1_000, le=10_000_000_000, description="prompt + completion tokens per model in the whole run"
    )
    max_wall_s: float = Field(600.0, gt=0, le=7 * 86_400, description="wall-clock seconds for the whole run")
    cell_cpu_s: float = Field(20.0, gt=0, le=3600, description="CPU seconds per cell in the sandbox")
    cell_memory_bytes: int = Field(
        512 * 1024 * 1024, ge=16 * 1024 * 1024, le=4 * 1024**3, description="sandbox linear memory in bytes"
    )
    max_output_chars: int = Field(
        2000, ge=100, le=1_000_000, description="cell output characters shown to the root (head and tail)"
    )
    max_sub_prompt_tokens: int | None = Field(
        None, ge=16, le=10_000_000, description="tokens per sub-call prompt (default: what fits the worker)"
    )
    root_max_tokens: int = Field(384, ge=16, le=32_768, description="tokens per root reply")
    root_temperature: float = Field(0.0, ge=0.0, le=2.0, description="root sampling temperature (0: greedy)")
    root_top_p: float = Field(1.0, gt=0.0, le=1.0, description="root nucleus sampling")
    root_seed: int | None = Field(None, ge=0, le=2**32 - 1, description="root sampling seed")
    root_code_only: bool = Field(
        True, description="hold each root reply to one Python code block with a grammar (where the backend has them)"
    )
    sub_max_tokens: int = Field(256, ge=1, le=32_768, description="default tokens per worker reply")
    max_errors: int = Field(5, ge=1, le=100, description="consecutive failing cells before the run stops")
    max_no_code: int = Field(3, ge=1, le=100, description="consecutive replies without code before the run stops")
    max_repeats: int = Field(
        1, ge=0, le=100, description="consecutive repeated cells or outputs tolerated after a warning"
    )
    plan_mode: Literal["typed", "code", "auto"] = Field(
        "auto",
        description="typed: operators, a checked first step and grounded answers; code: the plain prompt; "
        "auto: typed for small roots, code for large ones",
    )

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def merged(self, overrides: Limits | dict[str, Any] | None) -> Limits:
        """These limits with ``overrides`` applied (validated); a ``Limits`` replaces them whole.

        Only fields someone set count as set (``model_fields_set``), so a run may still scale the others.
        """
        if overrides is None:
            return self
        if isinstance(overrides, Limits):
            return overrides
        return Limits(**{**self.model_dump(exclude_unset=True), **overrides})


LIMIT_FIELDS = frozenset(Limits.model_fields)


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "total_tokens": self.total_tokens,
            "latency_s": round(self.latency_s, 3),
        }


def sum_usage(items: Any) -> Usage:
    total = Usage()
    for u in items:
        total.add(u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.latency_s, u.calls)
    return total


@dataclass
class CellCounter:
    """Sub-calls made by one cell (the per-cell limit)."""

    sub_calls: int = 0


@dataclass
class Budget:
    """Shared, thread-safe counters for one top-level run and its children.

    ``cancel`` is the run's token: it fires on a caller's cancel and at the wall-clock deadline (``max_wall_s``).
    """

    limits: Limits
    cancel: CancelToken | None = None
    started: float = field(default_factory=time.monotonic)
    root_turns: int = 0
    sub_calls: int = 0
    sub_calls_by_kind: dict[str, int] = field(default_factory=dict)
    usage_by_model: dict[str, Usage] = field(default_factory=dict)  # the per-model token limit counts here
    usage_by_role: dict[str, Usage] = field(default_factory=dict)
    usage_by_depth: dict[int, Usage] = field(default_factory=dict)
    cells: int = 0
    failed_cells: int = 0
    max_depth_reached: int = 0
    exhausted: GuardrailError | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- queries -------------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining_s(self) -> float:
        return self.limits.max_wall_s - self.elapsed()

    def fail(self, err: GuardrailError) -> GuardrailError:
        """``err``, recorded as the reason the run must stop when it is fatal (the first such reason wins)."""
        if err.fatal and self.exhausted is None:
            self.exhausted = err
        return err

    def stop_reason(self) -> str | None:
        """``"cancelled"`` / ``"max_wall_s"`` once the run must stop, else None (checked between steps)."""
        if self.cancel is not None and self.cancel.is_set():
            return self.cancel.reason or "cancelled"
        if self.elapsed() > self.limits.max_wall_s:
            return "max_wall_s"
        return None

    def check_time(self) -> None:
        """Refuse further work once the run is cancelled or past its wall-clock limit."""
        reason = self.stop_reason()
        if reason is None:
            return
        if reason == "max_wall_s":
            msg = (
                f"time limit reached: the run has used {self.elapsed():.0f} s of its "
                f"{self.limits.max_wall_s:.0f} s; no more model calls. Call FINAL with your best answer."
            )
        else:
            msg = "the run was cancelled; no more model calls"
        with self._lock:
            raise self.fail(GuardrailError(reason, msg, fatal=True))

    def check_tokens(self, model: str) -> None:
        self.check_time()
        with self._lock:
            used = self.usage_by_model.get(model, Usage()).total_tokens
            if used >= self.limits.max_tokens_per_model:
                raise self.fail(
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
                raise self.fail(
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

    def take_sub_calls(self, n: int, cell: CellCounter | None, *, batch: bool = False, kind: str = "llm") -> None:
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
                raise self.fail(
                    GuardrailError(
                        "max_sub_calls",
                        f"sub-call budget exhausted: {self.sub_calls} of {lim.max_sub_calls} used, {left} left, "
                        f"{n} requested. Aggregate what you already have in code and call FINAL with your answer.",
                        fatal=left <= 0,
                    )
                )
            self.sub_calls += n
            self.sub_calls_by_kind[kind] = self.sub_calls_by_kind.get(kind, 0) + n
            if cell is not None:
                cell.sub_calls += n

    def sub_calls_left(self) -> int:
        with self._lock:
            return max(0, self.limits.max_sub_calls - self.sub_calls)

    def record(
        self,
        model: str,
        role: str,
        depth: int,
        prompt: int,
        completion: int,
        cached: int = 0,
        latency: float = 0.0,
        calls: int = 1,
    ) -> None:
        with self._lock:
            for bucket, key in ((self.usage_by_model, model), (self.usage_by_role, role)):
                bucket.setdefault(key, Usage()).add(prompt, completion, cached, latency, calls)
            self.usage_by_depth.setdefault(depth, Usage()).add(prompt, completion, cached, latency, calls)
            self.max_depth_reached = max(self.max_depth_reached, depth)

    def record_cell(self, failed: bool) -> None:
        with self._lock:
            self.cells += 1
            self.failed_cells += int(failed)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "root_turns": self.root_turns,
                "sub_calls": self.sub_calls,
                "elapsed_s": round(self.elapsed(), 3),
                "tokens": {r: u.total_tokens for r, u in self.usage_by_role.items()},
            }


WALL_S_PER_ITEM = 1.0  # twice the measured per-line labelling time on 2 cores: slower CPUs, retries
MAX_SCALED_WALL_S = 4 * 3600.0


def scaled_for(lim: Limits, items: int) -> dict[str, float]:
    """The limits an aggregation over ``items`` entries needs, among those the caller did not set and that are lower.

    About one worker call per entry, and the time for it: labelling one line took 0.5 s with the 1.5B worker on
    2 CPU cores (1,000 lines of a 32K-token window: 520 s), past the 600 s default once the root's turns are added.
    """
    need = min(items + 100, 20_000)
    wants: dict[str, float] = {
        "max_sub_calls": need,
        "max_sub_calls_per_cell": need,
        "max_wall_s": min(300.0 + WALL_S_PER_ITEM * items, MAX_SCALED_WALL_S),
    }
    return {k: v for k, v in wants.items() if k not in lim.model_fields_set and getattr(lim, k) < v}


def split_limits(kwargs: dict[str, Any]) -> tuple[Limits, dict[str, Any]]:
    """Separate guardrail overrides from other keyword arguments; unknown names are returned untouched."""
    lim = {k: v for k, v in kwargs.items() if k in LIMIT_FIELDS}
    rest = {k: v for k, v in kwargs.items() if k not in LIMIT_FIELDS}
    return Limits(**lim), rest
