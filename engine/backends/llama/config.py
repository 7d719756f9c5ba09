"""Settings and counters of the llama backend, and the capacity rule that sizes its one KV pool.

Why a rule: the backend runs every sequence (shared prefixes, chat sessions, worker requests) in one llama.cpp
context with a *unified* KV cache, so ``n_ctx`` is not "the context of one prompt" but the whole pool that every
concurrent run draws from. Sizing it by hand is error-prone; :meth:`LlamaConfig.for_workload` applies the rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


class InvalidConfigError(ValueError):
    """A LlamaConfig setting is out of bounds; ``field`` names it (the CLI maps it to its flag)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"LlamaConfig.{field} {problem}")
        self.field, self.problem = field, problem


# lower bounds of the integer settings (0 threads would never decode: `--threads 0` hung before this check)
_AT_LEAST = {
    "n_ctx": 1,
    "n_parallel": 1,
    "n_batch": 1,
    "n_ubatch": 1,
    "n_prefix_seqs": 1,
    "prefill_chunk": 1,
    "max_sessions": 0,
    "n_threads": 1,
    "n_threads_batch": 1,
    "n_gpu_layers": -1,
    "min_saved_prefix_tokens": 0,
}
_OPTIONAL = frozenset({"n_threads", "n_threads_batch"})


@dataclass(frozen=True)
class LlamaConfig:
    """Settings of a :class:`~engine.backends.llama.LlamaBackend`.

    ``model`` is a catalog name (resolved with ``models.resolve_model_path``) or a path to a ``.gguf`` file.

    Sequences: the context has ``n_seq_max = n_prefix_seqs + n_parallel + max_sessions`` of them: a small LRU
    pool of shared-prefix sequences (the worker's system prompt, the root's system prompt, ... each computed once
    and tagged into requests with ``seq_cp``), up to ``n_parallel`` worker requests (and session-less chats)
    generating at once, and up to ``max_sessions`` chat sessions whose KV stays alive between turns. A session
    is dropped only by ``end_session`` or when a new session needs a slot beyond ``max_sessions`` (least recently
    used first); worker requests never evict a session, they wait for KV instead.

    Capacity rule (``n_ctx`` is the whole unified KV pool, shared by all sequences; prefix cells are stored once)::

        n_ctx >= sum(prefix tokens)                      # e.g. root + worker system prompts
                 + concurrent_runs * root_history_tokens # root sessions, when the root runs on this model
                 + n_parallel * (chunk_tokens + answer_tokens)

    A request is admitted only when its worst case (prompt + ``max_tokens``) fits next to what is already held;
    otherwise it waits, so an undersized pool costs latency, not errors — except when idle sessions alone hold
    the pool and a worker prompt can never fit, which is reported as a clear error naming this rule.
    :meth:`for_workload` computes ``n_ctx``, ``n_parallel`` and ``max_sessions`` from the expected load.
    """

    model: str
    n_ctx: int = 8192
    n_parallel: int = 4
    max_sessions: int = 2
    n_prefix_seqs: int = 2  # shared prefixes kept at once (LRU): root and worker system prompts coexist
    n_batch: int = 2048
    n_ubatch: int = 512
    n_threads: int | None = None  # None: all cores (os.cpu_count())
    n_threads_batch: int | None = None  # None: same as n_threads
    n_gpu_layers: int = -1  # -1: offload every layer when llama.cpp was built with a GPU backend
    flash_attn: bool | None = None  # None: llama.cpp decides
    prefix_cache: bool = True  # save/restore shared system-prompt KV on disk
    prefix_cache_dir: Path | None = None  # None: $OUTCORE_PREFIX_CACHE or <user cache>/outcore/prefix-kv
    min_saved_prefix_tokens: int = 64  # shorter prefixes are cheaper to recompute than to load
    verbose: bool = False  # llama.cpp's own log lines as raw stderr (default: JSON-lines debug events)
    # True: prefill chunks ride in the same decode as the other sequences' generation tokens (continuous
    # batching, best throughput). False: each request's prefill gets a decode of its own.
    mix_prefill: bool = True
    # prefill tokens per decode step while other requests are generating (chunked prefill): bounds how long a
    # generating request (a root turn streaming its reply) waits for its next token when a long prompt arrives.
    # With nothing generating, a step takes up to n_batch prompt tokens.
    prefill_chunk: int = 512

    def __post_init__(self) -> None:
        """The one place the bounds of these settings are declared (the CLI and the server report them)."""
        for name, low in _AT_LEAST.items():
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidConfigError(name, f"must be an integer (got {value!r})")
            if value < low:
                raise InvalidConfigError(name, f"must be at least {low} (got {value!r})")
        if self.n_seq_max > 256:  # LLAMA_MAX_SEQ
            raise ValueError(f"n_prefix_seqs + n_parallel + max_sessions = {self.n_seq_max} exceeds llama.cpp's 256")

    @property
    def n_seq_max(self) -> int:
        return self.n_prefix_seqs + self.n_parallel + self.max_sessions

    @classmethod
    def for_workload(
        cls,
        model: str,
        *,
        concurrent_runs: int = 1,
        chunk_tokens: int = 2048,
        answer_tokens: int = 256,
        root_history_tokens: int = 0,
        prefix_tokens: int = 2048,
        n_parallel: int | None = None,
        headroom: float = 0.1,
        **options: Any,
    ) -> LlamaConfig:
        """A config whose KV pool holds the given load without waiting (see the capacity rule above).

        ``concurrent_runs``: top-level runs served at once. ``chunk_tokens``/``answer_tokens``: the largest worker
        prompt (system prompt included) and its ``max_tokens``. ``root_history_tokens``: the largest root
        conversation kept per run (0 when the root runs on another backend; then one session slot is kept for
        one-off chats). ``prefix_tokens``: all shared system prompts together. ``n_parallel`` defaults to
        ``max(4, concurrent_runs)`` worker slots. ``headroom`` adds a fraction for template tokens and
        fragmentation; ``n_ctx`` is rounded up to a multiple of 256. Other ``options`` are passed through.
        """
        if concurrent_runs < 1:
            raise ValueError("concurrent_runs must be at least 1")
        for name, v in (
            ("chunk_tokens", chunk_tokens),
            ("answer_tokens", answer_tokens),
            ("root_history_tokens", root_history_tokens),
            ("prefix_tokens", prefix_tokens),
        ):
            if v < 0:
                raise ValueError(f"{name} must be 0 or more (got {v})")
        slots = n_parallel if n_parallel is not None else max(4, concurrent_runs)
        sessions = concurrent_runs if root_history_tokens > 0 else 1
        need = prefix_tokens + concurrent_runs * root_history_tokens + slots * (chunk_tokens + answer_tokens)
        n_ctx = int(math.ceil(need * (1.0 + max(0.0, headroom)) / 256.0)) * 256
        return cls(model=model, n_ctx=max(n_ctx, 512), n_parallel=slots, max_sessions=sessions, **options)

    def with_options(self, **options: Any) -> LlamaConfig:
        return replace(self, **options)


@dataclass
class LlamaStats:
    """Counters that make the scheduler's behaviour observable (tests, benchmarks, traces)."""

    decode_calls: int = 0
    max_batch_seqs: int = 0  # most sequences in one decode step
    max_batch_groups: int = 0  # most distinct submit calls (batch()/chat()) sharing one decode step
    max_batch_owners: int = 0  # most distinct owners (runs) sharing one decode step
    prompt_tokens_decoded: int = 0  # request prompt tokens actually computed
    prefix_tokens_decoded: int = 0  # shared-prefix tokens computed into a prefix sequence
    prefix_tokens_restored: int = 0  # shared-prefix tokens loaded from disk
    prefix_saves: int = 0
    prefix_evictions: int = 0  # a prefix sequence reused for another prefix (LRU)
    prefix_seconds: float = 0.0  # time spent getting shared prefixes into KV (restore or compute)
    cached_tokens: int = 0  # prompt tokens reused from KV
    generated_tokens: int = 0
    preemptions: int = 0  # requests pushed back because the KV cache was full
    session_evictions: int = 0  # sessions dropped for another session (LRU over max_sessions)
    cancelled: int = 0
    requests: int = 0
