"""The operators' host calls of one run, and the ``operator`` trace event every operator call emits.

Why one table: the sandbox is built once per environment (a multi-turn session keeps it across runs), so each
call resolves the run currently bound (like ``llm_map``) and that run's :class:`Operators`, which keeps what the
run has measured. ``op_event`` is the light call through which the guest-side operators (terms, find, filter,
extract by regex, reduce, chain, entries) are recorded; the model-backed ones record themselves here.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.operators.base import Operators
from engine.operators.extract import extract
from engine.operators.judge import judge
from engine.operators.label import label
from engine.operators.read import read

if TYPE_CHECKING:
    from engine.run import Run
    from engine.subcalls import Binding

HOST_CALLS = ("op_read", "op_label", "op_judge", "op_extract", "op_event")  # = outcore_ops.HOST_CALLS in the guest


_BY_RUN: weakref.WeakKeyDictionary[Run, Operators] = weakref.WeakKeyDictionary()


def for_run(run: Run) -> Operators:
    """The run's :class:`Operators` (made on first use; dropped with the run)."""
    ops = _BY_RUN.get(run)
    if ops is None:
        ops = _BY_RUN[run] = Operators(run)
    return ops


def operator_calls(binding: Binding) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """The host calls to add to a run's ``HostCalls.extra``: each routes to the run the binding holds now."""

    def route(name: str, fn: Callable[[Operators, dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        def call(a: dict[str, Any]) -> Any:
            if binding.run is None:
                raise RuntimeError("no run is using this environment")
            ops = for_run(binding.run)
            t0 = time.monotonic()
            try:
                return fn(ops, a)
            except Exception as e:  # a budget or worker failure: still one event, then the guest's HostError
                if name != "op_event":
                    ops.emit(name[3:], "", len(a.get("items") or a.get("passages") or []), 0,
                             f"{type(e).__name__}: {e}", time.monotonic() - t0)  # fmt: skip
                raise

        call.__name__ = name
        return call

    table: dict[str, Callable[[Operators, dict[str, Any]], Any]] = {
        "op_read": read,
        "op_label": label,
        "op_judge": judge,
        "op_extract": extract,
        "op_event": Operators.op_event,
    }
    return {name: route(name, fn) for name, fn in table.items()}
