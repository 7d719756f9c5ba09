"""The per-run state of the model-backed operators and the ``operator`` trace event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.trace import clip, new_id

if TYPE_CHECKING:
    from engine.run import Run


class Operators:
    """The model-backed operators of one run (see :mod:`engine.operators.read`, ``label``, ``extract``)."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def emit(
        self,
        name: str,
        args: str,
        n_in: int,
        n_out: int,
        refused: str | None,
        duration_s: float,
        **extra: Any,
    ) -> None:
        """One ``operator`` event: the step, its sizes, and its refusal (None when it went through)."""
        self.run.emit(
            "operator",
            id=new_id("op"),
            parent=self.run.subs.current_parent,
            name=name,
            args=clip(args, 300),
            n_in=int(n_in),
            n_out=int(n_out),
            refused=None if refused is None else clip(refused, 500),
            duration_s=round(float(duration_s), 4),
            **extra,
        )

    def op_event(self, a: dict[str, Any]) -> None:
        refused = a.get("refused")
        self.emit(
            str(a.get("name") or "?")[:40],
            str(a.get("args") or ""),
            int(a.get("n_in") or 0),
            int(a.get("n_out") or 0),
            None if refused is None else str(refused),
            float(a.get("duration_s") or 0.0),
        )
