"""The default backend: one GGUF model in-process, many sequences in one llama.cpp context.

Why this shape (see ``docs/llama-kv.md`` in the shared docs): an RLM run is one root conversation plus many
worker sub-calls that begin with the same system prompt, and a server hosts many runs at once on one pair of
loaded models. With one context of ``n_seq_max`` sequences and a *unified* KV cache:

* shared prefixes (each system prompt — the worker's and the root's — plus the longest common token prefix of a
  batch) are decoded once into a prefix sequence (:mod:`.prefix`) and tagged into each request's sequence with
  ``llama_memory_seq_cp`` (no copy in unified mode); system prompts are saved to disk and restored by the next
  process;
* requests run with continuous batching (:mod:`.scheduler`): every decode step carries one token for each
  generating sequence plus prefill chunks of newly admitted ones, across callers; admission is fair by run and
  puts root turns first;
* a ``chat`` session keeps its own sequence (:mod:`.sessions`), so the root's history is never recomputed
  between turns even when worker batches run in between.

Threading: exactly one thread (the decode thread started here) touches the context. ``chat``/``batch`` may be
called from any thread; they tokenize in the caller's thread, enqueue requests and wait — or return at once with
:class:`engine.cancel.Cancelled` when their token fires.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from engine.backends.base import (
    BackendError,
    BackendInfo,
    ContextOverflowError,
    Generation,
    Message,
    SamplingParams,
    TextCallback,
    choice_grammar,
)
from engine.backends.chat_template import ChatTemplate
from engine.backends.llama.config import LlamaConfig, LlamaStats
from engine.backends.llama.model import LlamaModel, batch_messages, lcp, resolve_model
from engine.backends.llama.requests import BATCH, CHAT, Group, Request
from engine.backends.llama.scheduler import Scheduler, build_scheduler
from engine.backends.prefix_store import PrefixStore, default_cache_dir, model_fingerprint
from engine.cancel import Cancelled, raise_if_cancelled
from engine.log import get_logger, log

if TYPE_CHECKING:
    from engine.cancel import CancelToken

_log = get_logger("backend.llama")


class LlamaBackend:
    """A :class:`~engine.backends.base.Backend` on llama-cpp-python's low-level API. Thread-safe."""

    def __init__(self, config: LlamaConfig, model_path: Path | None = None) -> None:
        self.config = config
        self.model_path = Path(model_path) if model_path is not None else resolve_model(config.model)
        self.stats = LlamaStats()
        self._model = LlamaModel(config, self.model_path)
        m = self._model
        self.n_ctx = m.n_ctx

        store: PrefixStore | None = None
        fp = ""
        if config.prefix_cache:
            store = PrefixStore(config.prefix_cache_dir or default_cache_dir())
            fp = model_fingerprint(self.model_path)
        self._sched = build_scheduler(m, config, self.stats, store=store, model_fp=fp, settings=m.settings)
        self._gids = itertools.count(1)
        self._closed = False
        self._close_lock = threading.Lock()
        self._info = BackendInfo(
            name=config.model,
            backend="llama",
            n_ctx=self.n_ctx,
            extra={
                "path": str(self.model_path),
                "n_seq_max": config.n_seq_max,
                "n_parallel": config.n_parallel,
                "max_sessions": config.max_sessions,
                "n_threads": m.n_threads,
                "n_gpu_layers": config.n_gpu_layers,
                "chat_template": m.chat_template_kind,
            },
        )
        self._thread = threading.Thread(target=self._sched.run, name="outcore-llama-decode", daemon=True)
        self._thread.start()
        log(
            _log,
            "info",
            "llama backend ready",
            model=str(self.model_path),
            n_ctx=self.n_ctx,
            n_seq_max=config.n_seq_max,
            n_threads=m.n_threads,
        )

    # ------------------------------------------------------------------ state

    @property
    def info(self) -> BackendInfo:
        return self._info

    @property
    def healthy(self) -> bool:
        return not self._closed and self._sched.error is None and self._thread.is_alive()

    @property
    def template(self) -> ChatTemplate:
        return self._model.template

    def _check_open(self) -> None:
        if self._sched.error is not None:
            raise BackendError(f"the llama backend is unhealthy ({self._sched.error}); create a new backend")
        if self._closed:
            raise BackendError("the llama backend is closed")
        if not self._thread.is_alive():
            raise BackendError("the llama backend is unhealthy: its decode thread is not running")

    # ------------------------------------------------------------------ tokens

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids of ``text``; ``special`` parses special-token text such as ``<|im_start|>``."""
        self._check_open()
        return self._model.tokenize(text, special=special)

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The exact tokens a conversation is decoded as (chat template + generation prompt)."""
        self._check_open()
        return self._model.prompt_tokens(messages)

    def batch_prompt_tokens(self, system: str, prompt: str) -> list[int]:
        return self.prompt_tokens(batch_messages(system, prompt))

    def _system_prefix(self, system: str) -> list[int]:
        """Tokens every prompt with this system message starts with (whatever the user text is)."""
        self._check_open()
        return self._model.system_prefix(system)

    # ------------------------------------------------------------------ generation

    def chat(
        self,
        messages: Sequence[Message],
        params: SamplingParams,
        *,
        session: str | None = None,
        cancel: CancelToken | None = None,
        owner: str | None = None,
        on_text: TextCallback | None = None,
    ) -> Generation:
        self._check_open()
        raise_if_cancelled(cancel)
        params, choice_ids = self._scored(params)
        if params.grammar:
            self._model.check_grammar(params.grammar)
        tokens = self.prompt_tokens(messages)
        self._check_fits(len(tokens), params, "conversation")
        shared: list[int] = []
        if messages and messages[0].role == "system" and messages[0].content:
            # the root's system prompt: computed once, shared into every session (and persisted) like a worker's
            sys_toks = self._model.system_prefix(messages[0].content)
            shared = tokens[: min(lcp(sys_toks, tokens), len(tokens) - 1)]
        group = Group(gid=next(self._gids), shared=shared, sys_len=len(shared))
        req = Request(
            tokens=tokens,
            params=params,
            group=group,
            kind=CHAT,
            owner=owner,
            session=session if self.config.max_sessions > 0 else None,
            stream=queue.SimpleQueue() if on_text is not None else None,
            choice_ids=choice_ids,
        )
        self._run([req], cancel, on_text)
        res = req.result
        assert res is not None
        if res.error is not None and res.finish_reason == "error":
            raise BackendError(res.error)
        return res

    def batch(
        self,
        system: str,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
        owner: str | None = None,
    ) -> list[Generation]:
        self._check_open()
        raise_if_cancelled(cancel)
        if not prompts:
            return []
        params, choice_ids = self._scored(params)
        if params.grammar:
            self._model.check_grammar(params.grammar)
        results: list[Generation | None] = [None] * len(prompts)
        reqs: list[tuple[int, list[int]]] = []
        for i, p in enumerate(prompts):
            try:
                toks = self.batch_prompt_tokens(system, p)
                self._check_fits(len(toks), params, "prompt")
            except ContextOverflowError as e:
                results[i] = Generation(text="", finish_reason="error", prompt_tokens=e.prompt_tokens, error=str(e))
                continue
            except BackendError:
                raise
            except Exception as e:  # a prompt the template/tokenizer rejects fails alone
                results[i] = Generation(text="", finish_reason="error", error=f"cannot encode prompt: {e}")
                continue
            reqs.append((i, toks))
        if reqs:
            sys_toks = self._system_prefix(system)
            all_toks = [t for _, t in reqs]
            sys_len = len(sys_toks)
            for t in all_toks:
                sys_len = min(sys_len, lcp(sys_toks, t), len(t) - 1)
            if len(all_toks) > 1:
                common = min(len(t) for t in all_toks) - 1
                first = all_toks[0]
                for t in all_toks[1:]:
                    common = min(common, lcp(first, t))
                shared = first[: max(common, sys_len)]
            else:
                shared = all_toks[0][:sys_len]
            gid = next(self._gids)
            group = Group(gid=gid, shared=shared, sys_len=sys_len)
            # without an owner, each batch call is its own owner for round-robin admission
            key = owner if owner is not None else ("batch", gid)
            submitted = [
                Request(tokens=t, params=params, group=group, kind=BATCH, owner=key, choice_ids=choice_ids)
                for _, t in reqs
            ]
            self._run(submitted, cancel, None)
            for (i, _), r in zip(reqs, submitted, strict=True):
                results[i] = r.result
        return [r for r in results if r is not None]

    def _scored(self, params: SamplingParams) -> tuple[SamplingParams, list[list[int]] | None]:
        """How ``params.choices`` is served: by the first-token ids that stand for each choice, or by a grammar.

        A choice counts by its own first token and by those of its capitalised and lower-case spellings (a model
        may write "Location" for "location"), each token given to one choice only. When two choices begin with the
        same token, the first position cannot tell them apart: the reply is generated under the choices' grammar.
        """
        choices = params.choices
        if not choices:
            return params, None
        if len(choices) < 2 or len(set(choices)) != len(choices) or not all(choices):
            raise BackendError("choices must be two or more distinct, non-empty strings")
        firsts = [self._model.tokenize(c)[0] for c in choices]
        if len(set(firsts)) < len(firsts):
            return replace(params, grammar=choice_grammar(choices)), None
        taken = set(firsts)
        ids = [[t] for t in firsts]
        for k, c in enumerate(choices):
            for variant in (c[:1].upper() + c[1:], c.lower()):
                t = self._model.tokenize(variant)[0]
                if t not in taken:
                    ids[k].append(t)
                    taken.add(t)
        return replace(params, max_tokens=1, grammar=None), ids

    def _run(self, reqs: list[Request], cancel: CancelToken | None, on_text: TextCallback | None) -> None:
        """Queue ``reqs`` and wait for them (streaming text to ``on_text``), or raise Cancelled when told to."""
        remove = None
        register = getattr(cancel, "on_cancel", None)
        if register is not None:
            remove = register(lambda: self._sched.cancel(reqs))
        try:
            self._sched.submit(reqs)
            if on_text is not None and reqs[0].stream is not None:
                stream = reqs[0].stream
                while (delta := _next_delta(stream, cancel, reqs, self._sched)) is not None:
                    on_text(delta)
            for r in reqs:
                while not r.done.wait(None if register is not None or cancel is None else 0.05):
                    if cancel is not None and cancel.is_set():  # a plain threading.Event: polled
                        self._sched.cancel(reqs)
        except BaseException:
            self._sched.cancel([r for r in reqs if r.result is None])  # e.g. on_text raised: free the slots
            raise
        finally:
            if remove is not None:
                remove()
        if cancel is not None and any(r.cancelled for r in reqs):
            raise Cancelled(getattr(cancel, "reason", None) or "cancelled")

    def _check_fits(self, n_prompt: int, params: SamplingParams, what: str) -> None:
        room = self.n_ctx - max(params.max_tokens, 1)
        if n_prompt > room:
            raise ContextOverflowError(n_prompt, room, what)

    # ------------------------------------------------------------------ lifetime

    def end_session(self, session: str) -> None:
        if not self._closed:
            self._sched.end_session(session)

    def close(self) -> None:
        """Stop the decode thread (pending callers get BackendError), then free the model. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._sched.close()
        self._thread.join()
        self._model.close()

    def __enter__(self) -> LlamaBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _next_delta(
    stream: queue.SimpleQueue[str | None], cancel: CancelToken | None, reqs: list[Request], sched: Scheduler
) -> str | None:
    if cancel is None or hasattr(cancel, "on_cancel"):
        return stream.get()
    while True:  # a plain threading.Event cannot wake us: poll it
        try:
            return stream.get(timeout=0.05)
        except queue.Empty:
            if cancel.is_set():
                sched.cancel(reqs)
                return None
