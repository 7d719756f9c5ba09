"""What a run returns: :class:`Completion`, its finish reasons and the usage accounting a caller can trust.

Why per role and not per model name: root and worker may be the same loaded model, and a benchmark or a bill needs
to know what the root spent apart from its workers. Why an ``error`` field: an environment or backend failure is
never passed off as the answer text; the answer stays the best partial answer (possibly empty) and the failure is
said separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.guardrails import Usage, sum_usage

# "final" is the only reason where the model itself ended the run; "direct" is a plain call that fitted.
FINAL = "final"
DIRECT = "direct"
# the run found no answer the text supports (a second refused FINAL): the answer is empty, the run partial
NO_ANSWER = "no_answer"
OK_REASONS = (FINAL, DIRECT)


@dataclass(frozen=True)
class RunEnd:
    """How one run (top-level or child) ended, before it is dressed up as a :class:`Completion`."""

    answer: str
    finish_reason: str
    partial: bool
    error: str | None = None


@dataclass(frozen=True)
class Completion:
    """The result of :meth:`engine.RLM.completion`.

    ``finish_reason`` is ``"final"`` when code called ``FINAL`` and ``"direct"`` for a plain call that fitted
    (:attr:`ok`); otherwise it names what stopped the run (``partial`` is then true): ``cancelled``, ``max_wall_s``,
    ``max_root_turns``, ``max_sub_calls``, ``max_tokens``, ``loop_detected``, ``no_code``, ``too_many_errors``,
    ``context_overflow``, ``backend_error`` or ``environment_error``.
    """

    answer: str
    finish_reason: str  # see the class docstring
    partial: bool  # True when the answer is a best effort after a limit, not a FINAL value
    run_id: str
    usage_by_role: dict[str, Usage]  # "root", "worker", "child_root"
    usage_by_depth: dict[int, Usage]
    root_turns: int
    sub_calls: int
    elapsed_s: float
    overhead_s: float  # engine time before the first root model call (prompt setup, sandbox start)
    trace_path: str | None
    error: str | None = None  # an environment/backend failure, stated apart from the answer
    sub_calls_by_kind: dict[str, int] = field(default_factory=dict)
    cells: int = 0
    failed_cells: int = 0
    max_depth_reached: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # root_s, cells_s, sub_calls_s (children included)

    @property
    def ok(self) -> bool:
        return self.finish_reason in OK_REASONS

    @property
    def usage(self) -> Usage:
        """All tokens of the run: every role, every depth."""
        return sum_usage(self.usage_by_role.values())

    @property
    def trace_id(self) -> str:  # the trace file is named after the run
        return self.run_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "finish_reason": self.finish_reason,
            "partial": self.partial,
            "error": self.error,
            "run_id": self.run_id,
            "usage": self.usage.to_dict(),
            "usage_by_role": {k: v.to_dict() for k, v in self.usage_by_role.items()},
            "usage_by_depth": {str(k): v.to_dict() for k, v in self.usage_by_depth.items()},
            "root_turns": self.root_turns,
            "sub_calls": self.sub_calls,
            "sub_calls_by_kind": dict(self.sub_calls_by_kind),
            "cells": self.cells,
            "failed_cells": self.failed_cells,
            "max_depth_reached": self.max_depth_reached,
            "elapsed_s": round(self.elapsed_s, 3),
            "overhead_s": round(self.overhead_s, 3),
            "trace_path": self.trace_path,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }
