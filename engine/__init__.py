"""outcore engine: the RLM loop, model backends, guardrails, traces and the CLI.

Public API::

    from engine import RLM, Completion, Limits, CancelToken, Cancelled, Usage, InvalidPromptError

Names are imported lazily, so ``import engine`` (the CLI, a backend alone) does not load the sandbox runtime.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "RLM": "engine.rlm",
    "RLMSession": "engine.rlm",
    "Completion": "engine.result",
    "Limits": "engine.guardrails",
    "Usage": "engine.guardrails",
    "GuardrailError": "engine.guardrails",
    "CancelToken": "engine.cancel",
    "Cancelled": "engine.cancel",
    "InvalidPromptError": "engine.inputs",
}
__all__ = [
    "RLM",
    "Cancelled",
    "CancelToken",
    "Completion",
    "GuardrailError",
    "InvalidPromptError",
    "Limits",
    "RLMSession",
    "Usage",
    "__version__",
]

if TYPE_CHECKING:
    from engine.cancel import Cancelled, CancelToken
    from engine.guardrails import GuardrailError, Limits, Usage
    from engine.inputs import InvalidPromptError
    from engine.result import Completion
    from engine.rlm import RLM, RLMSession


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    return getattr(import_module(module), name)
