"""Which help a root gets: ``typed`` (operators, a checked first step, grounded finish) or ``code`` (the paper's plain
prompt), and ``auto``, which picks one from the root model's size.

Why by size: the help layer exists because a small root (0.5B to 3B) does not reliably write the whole program
itself (small-roots notes: a 1.5B composed a fully right plan for 3 questions in 10, and without a checked first
step it committed its budget to a wrong route). A large root (7B and up, as in the RLM paper) is benchmarked on the
plain prompt, where extra steps would only change what is measured.

The threshold: :data:`TYPED_MAX_PARAMS` parameters when the backend reports them (``info.extra["n_params"]``),
else :data:`TYPED_MAX_BYTES` of GGUF file (``info.extra["path"]``): a 3B model at 8 bits is about 3.3 GB and a 7B at
4 bits about 4.4 GB, so 4 GB separates them at the usual quantisations. A backend that reports neither (a remote
OpenAI-compatible server, a scripted test model) gets ``code``: its size is unknown, and the plain prompt is the
paper's behaviour; ask for ``typed`` explicitly to help such a root.
"""

from __future__ import annotations

import os
from typing import Literal

from engine.backends.base import BackendInfo

PlanMode = Literal["typed", "code", "auto"]
TYPED = "typed"
CODE = "code"
TYPED_MAX_PARAMS = 4_000_000_000
TYPED_MAX_BYTES = 4_000_000_000


def resolve_mode(mode: str, info: BackendInfo) -> str:
    """``typed`` or ``code`` for a run whose root is described by ``info`` (``auto``: by the model's size)."""
    if mode in (TYPED, CODE):
        return mode
    if mode != "auto":
        raise ValueError(f"plan_mode must be 'typed', 'code' or 'auto', not {mode!r}")
    params = info.extra.get("n_params")
    if isinstance(params, (int, float)) and params > 0:
        return TYPED if params < TYPED_MAX_PARAMS else CODE
    path = info.extra.get("path")
    if isinstance(path, str):
        try:
            return TYPED if os.path.getsize(path) < TYPED_MAX_BYTES else CODE
        except OSError:
            pass
    return CODE
