"""How long a worker step over N items will take, from this run's own measurements, against the time left.

Why: a 1.5B root once labelled every line of 227 K characters for a question that was a lookup, and the run timed
out; another sent 1,300 log lines one by one to the worker. A step that cannot finish in the remaining wall clock
is refused before it starts, with the estimate, so the root revises (a regex filter first) instead of spending the
run. The estimate is per prompt token: on CPU a label or span call is dominated by reading its prompt, so seconds
per token measured on any of this run's worker calls (batched as the run batches them) carries over to items of
another size, where seconds per call would not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from engine.guardrails import ROLE_WORKER

if TYPE_CHECKING:
    from engine.run import Run

# Share of the remaining wall clock a step may plan to use: the root still needs turns to read the result and
# answer (a root turn of a 1.5B model on 2 CPU cores takes 5-20 s).
USABLE_SHARE = 0.8
T = TypeVar("T")
PROBE_ITEMS = 8  # the first small batch that measures the worker when this run has no measurement yet


@dataclass(frozen=True)
class Estimate:
    seconds: float
    per_token_s: float
    tokens: int
    remaining_s: float

    @property
    def fits(self) -> bool:
        return self.seconds <= USABLE_SHARE * self.remaining_s

    def describe(self, what: str) -> str:
        return (
            f"{what} would take about {self.seconds:.0f} s ({self.tokens:,} prompt tokens at "
            f"{self.per_token_s * 1000:.2f} ms per token, measured in this run) but the run has "
            f"{self.remaining_s:.0f} s left"
        )


def per_token_s(run: Run) -> float | None:
    """Seconds per prompt token of this run's worker calls so far (batched wall time), or None before the first."""
    usage = run.budget.usage_by_role.get(ROLE_WORKER)
    if usage is None or usage.calls == 0 or usage.prompt_tokens <= 0:
        return None
    return usage.latency_s / usage.prompt_tokens


def estimate(run: Run, prompts: list[str], rate: float) -> Estimate:
    """The time ``prompts`` would take at ``rate`` seconds per prompt token."""
    count = run.rlm.worker.count_tokens
    tokens = sum(count(p) for p in prompts)
    return Estimate(tokens * rate, rate, tokens, run.budget.remaining_s())


def probe_then_estimate(
    run: Run, items: list[str], prompt_of: Callable[[str], str], work: Callable[[list[str]], list[T]]
) -> tuple[list[T], Estimate]:
    """(results of a first small batch, the estimate for the rest of ``items``).

    With a measurement in this run (:func:`per_token_s`) nothing runs first. Without one, and with more than
    twice :data:`PROBE_ITEMS` items, ``work`` runs on the first :data:`PROBE_ITEMS` and their wall time per
    prompt token is the rate; the caller keeps those results, so a refused step costs only the probe.
    """
    done: list[T] = []
    rate = per_token_s(run)
    if rate is None and len(items) > 2 * PROBE_ITEMS:
        t0 = time.monotonic()
        done = work(items[:PROBE_ITEMS])
        tokens = sum(run.rlm.worker.count_tokens(prompt_of(t)) for t in items[:PROBE_ITEMS])
        rate = (time.monotonic() - t0) / max(tokens, 1)
    return done, estimate(run, [prompt_of(t) for t in items[len(done) :]], rate or 0.0)
