"""Running a reply's code blocks in the REPL, and the hints that go back to the root with their output.

Why apart from the loop: these are the two things every turn does the same way, whatever the plan mode; the loop
(:mod:`engine.loop`) only decides what runs and when the run ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from engine import prompts as P
from engine.environment import Environment
from engine.guardrails import CellCounter
from engine.replies import format_outcome
from engine.runstate import RunState
from engine.trace import clip, new_id
from wasm_sandbox import CellResult


@dataclass
class Ran:
    """What one turn's cells did."""

    outputs: list[str] = field(default_factory=list)
    outcome: CellResult = field(default_factory=CellResult)
    failed: bool = False

    @property
    def output(self) -> str:
        return "\n".join(self.outputs)


def run_cells(run: RunState, env: Environment, blocks: list[str], tid: str, turn: int) -> Ran:
    """Each block in turn, traced; stops after a FINAL, a failure, or a spent budget."""
    ran = Ran()
    for code in blocks:
        run.subs.cell_counter = CellCounter()
        cid = new_id("cell")
        run.subs.current_parent = cid
        run.emit("cell_start", id=cid, parent=tid, turn=turn, code=clip(code, 8000))
        t0 = time.monotonic()
        try:
            outcome = env.run_cell(code)
        except Exception as e:  # noqa: BLE001 - the environment itself broke: report, keep the run alive
            outcome = CellResult(error=f"{type(e).__name__}: {e}")
        dt = time.monotonic() - t0
        run.timings["cells_s"] += dt
        text = format_outcome(outcome)
        cell_failed = bool(outcome.error or outcome.limit)
        run.budget.record_cell(cell_failed)
        run.emit(
            "cell",
            id=cid,
            parent=tid,
            turn=turn,
            output=clip(text),
            output_chars=len(text),
            error=outcome.error,
            limit=outcome.limit,
            state_reset=outcome.state_reset,
            final=outcome.final is not None,
            duration_s=round(outcome.duration_s or dt, 3),
            sub_calls=run.subs.cell_counter.sub_calls,
        )
        run.subs.current_parent = run.id
        ran.outputs.append(text)
        ran.outcome = outcome
        run.restored.extend(n for n in outcome.restored_names if n not in run.restored)
        ran.failed = ran.failed or cell_failed
        if outcome.final is not None or cell_failed or run.budget.exhausted is not None:
            break
        if run.budget.stop_reason() is not None:
            break
    return ran


def failure_hint(outcome: CellResult) -> str:
    """What to do about a failed cell: a limit, an import of the text, a refused step, or an error."""
    if outcome.limit and outcome.limit != "cancelled":
        reset = " The REPL state was reset: earlier variables are gone." if outcome.state_reset else ""
        return P.HINT_LIMIT.format(limit=outcome.limit.replace("_", " "), reset=reset)
    err = outcome.error or ""
    if err.startswith(("ImportError", "ModuleNotFoundError")):
        return P.HINT_IMPORT  # seen: a 1.5B root importing the package whose source it was given
    if err.startswith("StepRefused"):
        return P.HINT_STEP_REFUSED
    return P.HINT_ERROR


def housekeeping_hints(run: RunState, compacted: bool) -> list[str]:
    """Built-ins a cell rebound (and the sandbox put back), a compacted history, the sub-calls left."""
    hints = []
    if run.restored:
        hints.append(P.HINT_RESTORED.format(names=", ".join(run.restored)))
        run.restored = []
    if compacted:
        hints.append(P.HINT_COMPACTED)
    return hints


def budget_hint(run: RunState) -> list[str]:
    if run.rlm.sub_calls and run.subs.cell_counter.sub_calls:
        return [P.HINT_BUDGET.format(left=run.budget.sub_calls_left(), total=run.lim.max_sub_calls)]
    return []
