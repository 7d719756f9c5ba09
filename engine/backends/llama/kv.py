"""The scheduler's view of a llama.cpp context: a handful of KV and sampling operations on plain values.

Why this cut: admission, fairness, preemption and cancellation are the subtle part of the backend, and they must be
testable without loading a model (and on any machine in milliseconds). The scheduler only ever calls the methods
of :class:`KVOps`; :class:`~engine.backends.llama.model.LlamaModel` implements them on llama.cpp, and the tests
implement them on a few Python lists. Everything is called from the decode thread only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine.backends.base import SamplingParams

DECODE_OK = 0
DECODE_NO_SLOT = 1  # llama_decode's "no KV slot for the batch": free something and retry, or requeue


@dataclass
class Batch:
    """One llama_decode: a token per row with its position, the sequences it belongs to, and whether logits are
    wanted for it (a row index with logits is what :meth:`KVOps.sample` takes)."""

    tokens: list[int] = field(default_factory=list)
    pos: list[int] = field(default_factory=list)
    seqs: list[tuple[int, ...]] = field(default_factory=list)
    logits: list[bool] = field(default_factory=list)

    def add(self, token: int, pos: int, seqs: tuple[int, ...], logits: bool) -> int:
        self.tokens.append(token)
        self.pos.append(pos)
        self.seqs.append(seqs)
        self.logits.append(logits)
        return len(self.tokens) - 1

    def __len__(self) -> int:
        return len(self.tokens)


class KVOps(Protocol):
    """What the scheduler needs of a context. Positions are token positions; ``p1 = -1`` means "to the end"."""

    n_ctx: int  # cells in the unified KV pool
    n_batch: int  # most rows one decode takes

    def seq_rm(self, seq: int, p0: int, p1: int) -> None: ...

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None: ...

    def decode(self, batch: Batch) -> int:
        """0 ok, 1 no KV slot (nothing was changed), anything else a failure."""
        ...

    def new_sampler(self, params: SamplingParams) -> Any:
        """A fresh sampler chain for one request (grammar state is per request). Raises BackendError."""
        ...

    def free_sampler(self, sampler: Any) -> None: ...

    def sample(self, sampler: Any, row: int) -> int:
        """Sample the next token from the logits of ``row`` of the last decode (and advance the sampler)."""
        ...

    def token_logits(self, row: int, tokens: Sequence[int]) -> list[float]:
        """The raw logits of ``tokens`` at ``row`` of the last decode (scoring choices instead of sampling)."""
        ...

    def is_eog(self, token: int) -> bool: ...

    def piece(self, token: int) -> bytes: ...

    def save_seq(self, path: Path, seq: int, tokens: Sequence[int]) -> bool: ...

    def load_seq(self, path: Path, seq: int, tokens: Sequence[int]) -> bool:
        """Load a saved sequence into ``seq``; False (and ``seq`` left empty) unless it holds exactly ``tokens``."""
        ...
