"""The in-process llama.cpp backend, split along its seams.

* :mod:`.config` — :class:`LlamaConfig` (and its capacity rule, :meth:`LlamaConfig.for_workload`), stats;
* :mod:`.model` — loading, tokens, the chat template, and the KV operations on the native context;
* :mod:`.kv` — the small KV-operations interface the scheduler is written (and tested) against;
* :mod:`.scheduler` — admission, fairness, decode steps, cancellation; :mod:`.requests` — what it queues;
* :mod:`.sessions` — root conversations kept alive; :mod:`.prefix` — shared, persisted prefixes;
* :mod:`.backend` — :class:`LlamaBackend`, the thread-safe facade implementing the Backend protocol.
"""

from engine.backends.llama.backend import LlamaBackend
from engine.backends.llama.config import LlamaConfig, LlamaStats

__all__ = ["LlamaBackend", "LlamaConfig", "LlamaStats"]
