"""Model backends behind one small protocol (see :mod:`engine.backends.base`)."""

from engine.backends.base import (
    Backend,
    BackendError,
    BackendInfo,
    ContextOverflowError,
    Generation,
    Message,
    SamplingParams,
)

__all__ = [
    "Backend",
    "BackendError",
    "BackendInfo",
    "ContextOverflowError",
    "Generation",
    "Message",
    "SamplingParams",
]
