"""The host side of the typed operators (the guest side is ``wasm_sandbox/guest/outcore_ops.py``).

Why a package: the model-backed operators each have one job and their own checks: :mod:`.read` (the worker over
passages, grounded or NOT FOUND), :mod:`.label` (classify with a catch-all, refused over budget or when
degenerate), :mod:`.extract` (the worker's span per item); :mod:`.cost` estimates a step's time from this run's
measurements; :mod:`.calls` is the table of host calls a run gives its sandbox and the ``operator`` trace event.
"""

from engine.operators.calls import HOST_CALLS, Operators, operator_calls

__all__ = ["HOST_CALLS", "Operators", "operator_calls"]
