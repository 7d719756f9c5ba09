"""The default backend: one GGUF model in-process, many sequences in one llama.cpp context.

Why this shape (see ``docs/llama-kv.md`` in the shared docs): an RLM run is one root conversation plus many
worker sub-calls that begin with the same system prompt. With one context of ``n_seq_max`` sequences and a
*unified* KV cache:

* the shared prefix (system prompt, plus the longest common token prefix of a batch) is decoded once into
  sequence 0 and tagged into each request's sequence with ``llama_memory_seq_cp`` (no copy in unified mode);
* requests run with continuous batching: every decode step carries one token for each generating sequence plus
  prefill chunks of newly admitted ones; a finished slot takes the next waiting request;
* a ``chat`` session keeps its own sequence, so the root's history is never recomputed between turns even when
  worker batches run in between;
* the system-prompt KV is saved to disk and restored by the next process (:mod:`engine.backends.prefix_store`).

Threading: llama.cpp contexts are not thread-safe, so exactly one thread (the decode thread started here) touches
the context. ``chat``/``batch`` may be called from any thread; they tokenize in the caller's thread, enqueue
requests and wait. Requests from concurrent callers are admitted into the same decode steps (shared batches).
"""

from __future__ import annotations

import ctypes
import itertools
import os
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import llama_cpp as C

from engine.backends import llama_log
from engine.backends.base import (
    BackendError,
    BackendInfo,
    ContextOverflowError,
    FinishReason,
    Generation,
    Message,
    SamplingParams,
)
from engine.backends.chat_template import ChatTemplate
from engine.backends.prefix_store import PrefixStore, default_cache_dir, model_fingerprint, prefix_key
from engine.log import get_logger, log

_log = get_logger("backend.llama")
_BACKEND_INIT = threading.Lock()
_backend_ready = False
PREFIX_SEQ = 0


@dataclass(frozen=True)
class LlamaConfig:
    """Settings of a :class:`LlamaBackend`.

    ``model`` is a catalog name (resolved with ``models.resolve_model_path``) or a path to a ``.gguf`` file.
    The context has ``n_seq_max = 1 + n_parallel + max_sessions`` sequences: one for the shared prefix, up to
    ``n_parallel`` worker requests generating at once, and up to ``max_sessions`` chat sessions whose KV stays
    alive between turns (the least recently used is dropped, and later recomputed, beyond that). The KV cache is
    unified, so every sequence may use the whole ``n_ctx`` and shared prefix cells are stored once.
    """

    model: str
    n_ctx: int = 8192
    n_parallel: int = 4
    max_sessions: int = 2
    n_batch: int = 2048
    n_ubatch: int = 512
    n_threads: int | None = None  # None: all cores (os.cpu_count())
    n_threads_batch: int | None = None  # None: same as n_threads
    n_gpu_layers: int = -1  # -1: offload every layer when llama.cpp was built with a GPU backend
    flash_attn: bool | None = None  # None: llama.cpp decides
    prefix_cache: bool = True  # save/restore the system-prompt KV on disk
    prefix_cache_dir: Path | None = None  # None: $OUTCORE_PREFIX_CACHE or <user cache>/outcore/prefix-kv
    min_saved_prefix_tokens: int = 64  # shorter prefixes are cheaper to recompute than to load
    verbose: bool = False  # llama.cpp's own log lines as raw stderr (default: JSON-lines debug events)
    # True: prefill chunks ride in the same decode as the other sequences' generation tokens (continuous
    # batching, best throughput). False: each request's prefill gets a decode of its own.
    mix_prefill: bool = True

    @property
    def n_seq_max(self) -> int:
        return 1 + self.n_parallel + self.max_sessions


@dataclass
class LlamaStats:
    """Counters that make the scheduler's behaviour observable (tests, benchmarks, traces)."""

    decode_calls: int = 0
    max_batch_seqs: int = 0  # most sequences in one decode step
    max_batch_groups: int = 0  # most distinct submit calls (batch()/chat()) sharing one decode step
    prompt_tokens_decoded: int = 0  # request prompt tokens actually computed
    prefix_tokens_decoded: int = 0  # shared-prefix tokens computed into sequence 0
    prefix_tokens_restored: int = 0  # shared-prefix tokens loaded from disk
    prefix_saves: int = 0
    prefix_seconds: float = 0.0  # time spent getting shared prefixes into KV (restore or compute)
    cached_tokens: int = 0  # prompt tokens reused from KV
    generated_tokens: int = 0
    preemptions: int = 0  # requests pushed back because the KV cache was full
    requests: int = 0


@dataclass
class _Group:
    """One submit call (a batch or a chat): its requests share the prefix placed in sequence 0."""

    gid: int
    shared: list[int]  # tokens to hold in sequence 0 for this group (may be empty)
    sys_len: int  # leading tokens of ``shared`` that are the system prompt (persisted to disk)
    pre_cached: int | None = None  # tokens of ``shared`` already in KV before this group arrived


@dataclass
class _Request:
    tokens: list[int]
    params: SamplingParams
    group: _Group
    session: str | None = None
    t0: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: Generation | None = None
    # scheduler state
    seq: int = -1
    fed: list[int] = field(default_factory=list)  # tokens whose KV is in ``seq``
    pending: list[int] = field(default_factory=list)  # tokens still to decode
    reserved: int = 0  # KV cells this request may occupy beyond shared ones
    cached: int = 0
    sampler: Any = None
    out: list[int] = field(default_factory=list)
    out_bytes: bytearray = field(default_factory=bytearray)
    admitted_at: int = 0
    # positions below this also go into sequence 0: the group's shared prefix is computed in the same decode as
    # this request's own tokens (see ``_prepare_joint``)
    joint_until: int = 0


@dataclass
class _Session:
    seq: int = -1
    tokens: list[int] = field(default_factory=list)
    busy: bool = False


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _ensure_backend_init() -> None:
    global _backend_ready
    with _BACKEND_INIT:
        if not _backend_ready:
            C.llama_backend_init()
            _backend_ready = True


class LlamaBackend:
    """A :class:`~engine.backends.base.Backend` on llama-cpp-python's low-level API. Thread-safe."""

    def __init__(self, config: LlamaConfig, model_path: Path | None = None) -> None:
        self.config = config
        self.model_path = Path(model_path) if model_path is not None else _resolve(config.model)
        self.stats = LlamaStats()
        llama_log.install(raw_stderr=config.verbose)
        _ensure_backend_init()

        mparams = C.llama_model_default_params()
        mparams.n_gpu_layers = 999 if config.n_gpu_layers < 0 else config.n_gpu_layers
        self._model = C.llama_model_load_from_file(str(self.model_path).encode(), mparams)
        if not self._model:
            raise BackendError(f"llama.cpp could not load the model file {self.model_path}")
        self._vocab = C.llama_model_get_vocab(self._model)

        n_threads = config.n_threads or os.cpu_count() or 1
        cparams = C.llama_context_default_params()
        cparams.n_ctx = config.n_ctx
        cparams.n_batch = config.n_batch
        cparams.n_ubatch = min(config.n_ubatch, config.n_batch)
        cparams.n_seq_max = config.n_seq_max
        cparams.n_threads = n_threads
        cparams.n_threads_batch = config.n_threads_batch or n_threads
        cparams.kv_unified = True
        cparams.no_perf = True
        if config.flash_attn is not None:
            cparams.flash_attn_type = (
                C.LLAMA_FLASH_ATTN_TYPE_ENABLED if config.flash_attn else C.LLAMA_FLASH_ATTN_TYPE_DISABLED
            )
        self._ctx = C.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            C.llama_model_free(self._model)
            raise BackendError(
                f"llama.cpp could not create a context (n_ctx={config.n_ctx}, n_seq_max={config.n_seq_max}); "
                "try a smaller n_ctx"
            )
        self._mem = C.llama_get_memory(self._ctx)
        self.n_ctx = int(C.llama_n_ctx(self._ctx))
        self._n_batch = int(C.llama_n_batch(self._ctx))
        self._batch = C.llama_batch_init(self._n_batch, 0, 2)  # up to 2 sequences per token (see joint prefill)

        self._bos = int(C.llama_vocab_bos(self._vocab))
        self._add_bos = bool(C.llama_vocab_get_add_bos(self._vocab))
        bos_text = self._piece(self._bos, special=True).decode("utf-8", "ignore") if self._bos >= 0 else ""
        eos = int(C.llama_vocab_eos(self._vocab))
        eos_text = self._piece(eos, special=True).decode("utf-8", "ignore") if eos >= 0 else ""
        raw_template = C.llama_model_chat_template(self._model, None)
        self._bos_text = bos_text
        self.template = ChatTemplate(raw_template.decode("utf-8") if raw_template else None, bos_text, eos_text)

        # prefix persistence
        self._settings: dict[str, object] = {
            "n_ctx": self.n_ctx,
            "n_seq_max": config.n_seq_max,
            "kv_unified": True,
            "flash_attn": config.flash_attn,
            "n_ubatch": cparams.n_ubatch,
            "llama_cpp": llama_cpp.__version__,
        }
        self._store: PrefixStore | None = None
        self._model_fp = ""
        if config.prefix_cache:
            self._store = PrefixStore(config.prefix_cache_dir or default_cache_dir())
            self._model_fp = model_fingerprint(self.model_path)

        self._info = BackendInfo(
            name=config.model,
            backend="llama",
            n_ctx=self.n_ctx,
            extra={
                "path": str(self.model_path),
                "n_seq_max": config.n_seq_max,
                "n_parallel": config.n_parallel,
                "n_threads": n_threads,
                "n_gpu_layers": config.n_gpu_layers,
                "chat_template": "gguf" if not self.template.is_fallback else "chatml-fallback",
            },
        )

        # scheduler state (decode thread only, except the queue)
        self._seq0: list[int] = []
        self._free_seqs: list[int] = list(range(config.n_seq_max - 1, 0, -1))
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._waiting: deque[_Request] = deque()
        self._active: list[_Request] = []
        self._joint: _Request | None = None  # the request computing a shared prefix along with its own prompt
        self._sys_cache: OrderedDict[str, list[int]] = OrderedDict()
        self._gids = itertools.count(1)
        self._admit_counter = itertools.count(1)

        self._cv = threading.Condition()
        self._inbox: deque[_Request | tuple[str, str]] = deque()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="outcore-llama-decode", daemon=True)
        self._thread.start()
        log(
            _log,
            "info",
            "llama backend ready",
            model=str(self.model_path),
            n_ctx=self.n_ctx,
            n_seq_max=config.n_seq_max,
            n_threads=n_threads,
        )

    # ------------------------------------------------------------------ public API

    @property
    def info(self) -> BackendInfo:
        return self._info

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids of ``text``; ``special`` parses special-token text such as ``<|im_start|>``."""
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (C.llama_token * cap)()
        n = C.llama_tokenize(self._vocab, data, len(data), buf, cap, False, special)
        if n < 0:
            cap = -n
            buf = (C.llama_token * cap)()
            n = C.llama_tokenize(self._vocab, data, len(data), buf, cap, False, special)
        return list(buf[:n])

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self._piece(t) for t in tokens).decode("utf-8", "replace")

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The exact tokens a conversation is decoded as (chat template + generation prompt)."""
        text = self.template.render(messages)
        toks = self.tokenize(text, special=True)
        if self._add_bos and self._bos >= 0 and not (self._bos_text and text.startswith(self._bos_text)):
            toks.insert(0, self._bos)
        return toks

    def batch_prompt_tokens(self, system: str, prompt: str) -> list[int]:
        return self.prompt_tokens(_batch_messages(system, prompt))

    def chat(self, messages: Sequence[Message], params: SamplingParams, *, session: str | None = None) -> Generation:
        self._check_open()
        tokens = self.prompt_tokens(messages)
        self._check_fits(len(tokens), params, "conversation")
        group = _Group(gid=next(self._gids), shared=[], sys_len=0)
        req = _Request(tokens=tokens, params=params, group=group, session=session)
        self._submit([req])
        req.done.wait()
        assert req.result is not None
        if req.result.error is not None and req.result.finish_reason == "error":
            raise BackendError(req.result.error)
        return req.result

    def batch(self, system: str, prompts: Sequence[str], params: SamplingParams) -> list[Generation]:
        self._check_open()
        if not prompts:
            return []
        results: list[Generation | None] = [None] * len(prompts)
        reqs: list[tuple[int, list[int]]] = []
        for i, p in enumerate(prompts):
            try:
                toks = self.batch_prompt_tokens(system, p)
                self._check_fits(len(toks), params, "prompt")
            except ContextOverflowError as e:
                results[i] = Generation(text="", finish_reason="error", prompt_tokens=e.prompt_tokens, error=str(e))
                continue
            except Exception as e:  # a prompt the template/tokenizer rejects fails alone
                results[i] = Generation(text="", finish_reason="error", error=f"cannot encode prompt: {e}")
                continue
            reqs.append((i, toks))
        if reqs:
            sys_toks = self._system_prefix(system)
            all_toks = [t for _, t in reqs]
            sys_len = len(sys_toks)
            for t in all_toks:
                sys_len = min(sys_len, _lcp(sys_toks, t), len(t) - 1)
            if len(all_toks) > 1:
                common = min(len(t) for t in all_toks) - 1
                first = all_toks[0]
                for t in all_toks[1:]:
                    common = min(common, _lcp(first, t))
                shared = first[: max(common, sys_len)]
            else:
                shared = all_toks[0][:sys_len]
            group = _Group(gid=next(self._gids), shared=shared, sys_len=sys_len)
            submitted = [_Request(tokens=t, params=params, group=group) for _, t in reqs]
            self._submit(submitted)
            for (i, _), r in zip(reqs, submitted, strict=True):
                r.done.wait()
                results[i] = r.result
        return [r for r in results if r is not None]

    def end_session(self, session: str) -> None:
        if self._closed:
            return
        with self._cv:
            self._inbox.append(("end_session", session))
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._cv.notify()
        self._thread.join()
        C.llama_batch_free(self._batch)
        C.llama_free(self._ctx)
        C.llama_model_free(self._model)

    def __enter__(self) -> LlamaBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ caller-side helpers

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("the llama backend is closed")

    def _check_fits(self, n_prompt: int, params: SamplingParams, what: str) -> None:
        room = self.n_ctx - max(params.max_tokens, 1)
        if n_prompt > room:
            raise ContextOverflowError(n_prompt, room, what)

    def _system_prefix(self, system: str) -> list[int]:
        """Tokens every batch prompt with this system prompt starts with (whatever the user text is)."""
        with self._cv:
            hit = self._sys_cache.get(system)
        if hit is not None:
            return hit
        a = self.batch_prompt_tokens(system, "a")
        b = self.batch_prompt_tokens(system, "7")
        toks = a[: _lcp(a, b)]
        with self._cv:
            self._sys_cache[system] = toks
            while len(self._sys_cache) > 16:
                self._sys_cache.popitem(last=False)
        return toks

    def _submit(self, reqs: list[_Request]) -> None:
        with self._cv:
            if self._closed:
                raise BackendError("the llama backend is closed")
            self._inbox.extend(reqs)
            self._cv.notify()

    # ------------------------------------------------------------------ decode thread

    def _run(self) -> None:
        try:
            while True:
                with self._cv:
                    while not self._inbox and not self._active and not self._closed:
                        if self._waiting:
                            break
                        self._cv.wait()
                    if self._closed:
                        break
                    items = list(self._inbox)
                    self._inbox.clear()
                for item in items:
                    if isinstance(item, tuple):
                        self._drop_session(item[1])
                    else:
                        self.stats.requests += 1
                        self._waiting.append(item)
                self._admit()
                if self._active:
                    self._step()
                elif self._waiting:
                    # nothing could be admitted although nothing runs: free everything idle and retry once
                    self._free_idle_kv()
                    self._admit(force=True)
                    if self._active:
                        self._step()
        except BaseException as e:  # never leave callers waiting forever
            log(_log, "error", "decode thread crashed", error=repr(e))
            self._fail_all(f"llama backend decode thread failed: {e!r}")
            raise
        self._fail_all("the llama backend was closed")

    def _fail_all(self, msg: str) -> None:
        with self._cv:
            self._closed = True
            leftovers = [r for r in self._inbox if isinstance(r, _Request)]
            self._inbox.clear()
        for r in [*self._active, *self._waiting, *leftovers]:
            self._finish(r, "error", error=msg, release=False)
        self._active.clear()
        self._waiting.clear()

    # KV accounting: an upper bound of the cells in use, so admission waits instead of overflowing
    def _used_cells(self) -> int:
        used = len(self._seq0) + sum(r.reserved for r in self._active)
        used += sum(len(s.tokens) for s in self._sessions.values() if not s.busy and s.seq >= 0)
        return used

    def _need_cells(self, req: _Request) -> int:
        grow = len(req.group.shared) - _lcp(self._seq0, req.group.shared)
        if req.session is not None:
            sess = self._sessions.get(req.session)
            reuse = _lcp(sess.tokens, req.tokens) if sess else 0
            return len(req.tokens) - reuse + req.params.max_tokens
        return grow + len(req.tokens) - len(req.group.shared) + req.params.max_tokens

    def _admit(self, force: bool = False) -> None:
        n_workers = sum(1 for r in self._active if r.session is None)
        keep: deque[_Request] = deque()
        blocked = False
        while self._waiting:
            req = self._waiting.popleft()
            if blocked:
                keep.append(req)
                continue
            if req.session is not None:
                sess = self._sessions.get(req.session)
                if sess is not None and sess.busy:
                    keep.append(req)  # one turn of a session at a time
                    continue
                if (sess is None or sess.seq < 0) and not self._session_slot_available():
                    keep.append(req)  # every session sequence is busy with a running turn
                    continue
            elif n_workers >= self.config.n_parallel:
                keep.append(req)
                blocked = True
                continue
            elif self._joint is not None and req.group.shared:
                keep.append(req)  # sequence 0 is being filled by a joint prefill: copy it once it is complete
                continue
            if self._used_cells() + self._need_cells(req) > self.n_ctx:
                if self._active and not force:
                    keep.append(req)
                    blocked = True  # wait for running requests to free KV
                    continue
                self._free_idle_kv(keep_session=req.session)
            try:
                self._prepare(req)
            except BackendError as e:
                self._finish(req, "error", error=str(e))
                continue
            self._active.append(req)
            if req.session is None:
                n_workers += 1
            force = False
        self._waiting = keep

    def _free_idle_sessions(self, keep_session: str | None = None) -> None:
        for name, sess in list(self._sessions.items()):
            if name != keep_session and not sess.busy and sess.seq >= 0:
                self._release_session_seq(sess)

    def _free_idle_kv(self, keep_session: str | None = None) -> None:
        """Drop idle sessions' KV (they are recomputed on their next turn) and the prefix sequence."""
        self._free_idle_sessions(keep_session)
        if not any(r.group.shared for r in self._active):
            C.llama_memory_seq_rm(self._mem, PREFIX_SEQ, -1, -1)
            self._seq0 = []

    def _release_session_seq(self, sess: _Session) -> None:
        C.llama_memory_seq_rm(self._mem, sess.seq, -1, -1)
        self._free_seqs.append(sess.seq)
        sess.seq = -1
        sess.tokens = []

    def _drop_session(self, name: str) -> None:
        sess = self._sessions.get(name)
        if sess is None:
            return
        if sess.busy:  # let the running turn finish; end it afterwards
            with self._cv:
                self._inbox.append(("end_session", name))
            return
        if sess.seq >= 0:
            self._release_session_seq(sess)
        del self._sessions[name]

    def _session_slot_available(self) -> bool:
        holders = [s for s in self._sessions.values() if s.seq >= 0]
        return len(holders) < self.config.max_sessions or any(not s.busy for s in holders)

    def _acquire_session(self, name: str) -> _Session:
        sess = self._sessions.get(name)
        if sess is None:
            sess = _Session()
            self._sessions[name] = sess
        self._sessions.move_to_end(name)
        if sess.seq < 0:
            holders = [s for s in self._sessions.values() if s.seq >= 0]
            if len(holders) >= self.config.max_sessions:
                for victim in holders:  # least recently used first
                    if not victim.busy:
                        self._release_session_seq(victim)
                        break
            sess.seq = self._free_seqs.pop()
            sess.tokens = []
        return sess

    def _joint_ok(self, req: _Request) -> bool:
        """Whether ``req`` may compute its group's missing shared prefix together with its own prompt.

        Why: computing the prefix in a decode of its own, and then the first request's rest, splits the first
        prompt into different physical batches than a plain single-sequence run (llama-cpp-python's ``Llama``)
        does; llama.cpp's CPU kernels round differently per batch shape, so greedy outputs could differ at
        near-ties. Decoding the first prompt in one pass, its shared tokens tagged with sequence 0 as well,
        reproduces the single-sequence computation and saves a decode. Not used when the system prompt is about
        to be saved to disk (the saved file must hold exactly the system-prompt cells).
        """
        group = req.group
        if req.session is not None or not group.shared or group.pre_cached is not None:
            return False
        c = _lcp(self._seq0, group.shared)
        if c >= len(group.shared):
            return False
        saving = self._store is not None and group.sys_len >= self.config.min_saved_prefix_tokens
        return not saving or c >= group.sys_len

    def _prepare_joint(self, req: _Request) -> None:
        group = req.group
        c = _lcp(self._seq0, group.shared)
        if c < len(self._seq0):
            C.llama_memory_seq_rm(self._mem, PREFIX_SEQ, c, -1)
            self._seq0 = self._seq0[:c]
        group.pre_cached = c
        req.seq = self._free_seqs.pop()
        C.llama_memory_seq_rm(self._mem, req.seq, -1, -1)
        if c > 0:
            C.llama_memory_seq_cp(self._mem, PREFIX_SEQ, req.seq, 0, c)
        req.joint_until = len(group.shared)
        self._joint = req
        req.fed = req.tokens[:c]
        req.pending = req.tokens[c:]
        req.reserved = len(req.tokens) - c + req.params.max_tokens
        req.cached = c
        self.stats.cached_tokens += c

    def _end_joint(self, req: _Request) -> None:
        req.joint_until = 0
        if self._joint is req:
            self._joint = None

    def _fed(self, req: _Request, chunk: list[int]) -> None:
        """Record that ``chunk`` (the next pending tokens of ``req``) is now in the KV cache."""
        if req.joint_until:
            k = max(0, min(len(chunk), req.joint_until - len(req.fed)))
            self._seq0.extend(chunk[:k])
            self.stats.prefix_tokens_decoded += k
            if len(req.out) == 0:
                self.stats.prompt_tokens_decoded -= k
        req.fed.extend(chunk)
        del req.pending[: len(chunk)]
        if req.joint_until and len(req.fed) >= req.joint_until:
            self._end_joint(req)

    def _prepare(self, req: _Request) -> None:
        """Give ``req`` a sequence holding as much of its prompt as the KV cache already has."""
        if self._joint_ok(req):
            self._prepare_joint(req)
        else:
            self._prepare_own(req)
        req.out = []
        req.out_bytes = bytearray()
        req.admitted_at = next(self._admit_counter)
        req.sampler = _make_sampler(req.params)

    def _prepare_own(self, req: _Request) -> None:
        group = req.group
        first_of_group = False
        pre = 0
        if group.shared:
            t0 = time.perf_counter()
            pre = self._ensure_prefix(group)
            self.stats.prefix_seconds += time.perf_counter() - t0
            first_of_group = group.pre_cached is None
            if first_of_group:
                group.pre_cached = pre
        n = len(req.tokens)
        own: list[int] = []
        if req.session is not None:
            sess = self._acquire_session(req.session)
            sess.busy = True
            req.seq = sess.seq
            own = sess.tokens
        else:
            req.seq = self._free_seqs.pop()
        c_own = min(_lcp(own, req.tokens), n - 1)
        c0 = min(_lcp(self._seq0, req.tokens), n - 1)
        if c0 > c_own:
            C.llama_memory_seq_rm(self._mem, req.seq, -1, -1)
            C.llama_memory_seq_cp(self._mem, PREFIX_SEQ, req.seq, 0, c0)
            reuse = c0
            req.reserved = n - c0 + req.params.max_tokens
            # the group's first request is charged with computing the shared prefix; the others reuse it
            cached = min(c0, pre) if group.shared and first_of_group else c0
        else:
            C.llama_memory_seq_rm(self._mem, req.seq, c_own, -1)
            reuse = c_own
            req.reserved = n + req.params.max_tokens
            cached = c_own
        req.fed = req.tokens[:reuse]
        req.pending = req.tokens[reuse:]
        req.cached = cached
        self.stats.cached_tokens += cached

    def _ensure_prefix(self, group: _Group) -> int:
        """Make sequence 0 hold ``group.shared``; return how many of its tokens were already there."""
        target = group.shared
        c = _lcp(self._seq0, target)
        if c < len(self._seq0):
            C.llama_memory_seq_rm(self._mem, PREFIX_SEQ, c, -1)
            self._seq0 = self._seq0[:c]
        pre = c
        sys_len = group.sys_len
        if c < sys_len and self._store is not None and sys_len >= self.config.min_saved_prefix_tokens:
            if self._restore_prefix(target[:sys_len]):
                pre = sys_len
        if len(self._seq0) < sys_len:
            self._decode_prefix(target[len(self._seq0) : sys_len])
            if self._store is not None and sys_len >= self.config.min_saved_prefix_tokens:
                self._save_prefix(target[:sys_len])
        if len(self._seq0) < len(target):
            self._decode_prefix(target[len(self._seq0) :])
        return pre

    def _decode_prefix(self, tokens: list[int]) -> None:
        pos = len(self._seq0)
        for start in range(0, len(tokens), self._n_batch):
            chunk = tokens[start : start + self._n_batch]
            b = self._batch
            for j, t in enumerate(chunk):
                b.token[j] = t
                b.pos[j] = pos + start + j
                b.n_seq_id[j] = 1
                b.seq_id[j][0] = PREFIX_SEQ
                b.logits[j] = 0
            b.n_tokens = len(chunk)
            rc = C.llama_decode(self._ctx, b)
            if rc == 1:  # KV full: drop idle sessions (never sequence 0, which is being extended)
                self._free_idle_sessions()
                rc = C.llama_decode(self._ctx, b)
            if rc != 0:
                C.llama_memory_seq_rm(self._mem, PREFIX_SEQ, len(self._seq0), -1)
                raise _PrefixError(f"llama_decode failed ({rc}) while computing the shared prefix")
            self._seq0.extend(chunk)
            self.stats.prefix_tokens_decoded += len(chunk)

    def _prefix_file(self, tokens: list[int]) -> tuple[str, Path] | None:
        if self._store is None:
            return None
        key = prefix_key(self._model_fp, self._settings, tokens)
        return key, self._store.path_for(key)

    def _restore_prefix(self, tokens: list[int]) -> bool:
        found = self._prefix_file(tokens)
        if found is None or not found[1].exists():
            return False
        key, path = found
        C.llama_memory_seq_rm(self._mem, PREFIX_SEQ, -1, -1)
        self._seq0 = []
        cap = len(tokens) + 1
        out = (C.llama_token * cap)()
        n_out = ctypes.c_size_t(0)
        t0 = time.monotonic()
        nread = C.llama_state_seq_load_file(self._ctx, str(path).encode(), PREFIX_SEQ, out, cap, ctypes.byref(n_out))
        if nread == 0 or list(out[: n_out.value]) != tokens:
            C.llama_memory_seq_rm(self._mem, PREFIX_SEQ, -1, -1)
            log(_log, "warning", "ignored a stale or foreign prefix file", path=str(path))
            return False
        self._seq0 = list(tokens)
        self.stats.prefix_tokens_restored += len(tokens)
        log(_log, "info", "restored prefix", tokens=len(tokens), seconds=round(time.monotonic() - t0, 4))
        return True

    def _save_prefix(self, tokens: list[int]) -> None:
        found = self._prefix_file(tokens)
        if found is None or found[1].exists() or self._store is None:
            return
        key, _ = found
        try:
            tmp = self._store.temp_path_for(key)
            arr = (C.llama_token * len(tokens))(*tokens)
            n = C.llama_state_seq_save_file(self._ctx, str(tmp).encode(), PREFIX_SEQ, arr, len(tokens))
            if n == 0:
                tmp.unlink(missing_ok=True)
                return
            self._store.commit(tmp, key)
            self.stats.prefix_saves += 1
        except OSError as e:  # a read-only cache dir must not break generation
            log(_log, "warning", "could not save prefix", error=str(e))

    def _step(self) -> None:
        """One llama_decode over every active request: generation tokens first, then prefill chunks."""
        plan: list[tuple[_Request, list[int], bool]] = []
        prefilling = sorted((r for r in self._active if r.pending and not r.out), key=lambda r: r.admitted_at)
        if prefilling and not self.config.mix_prefill:
            # one request's prefill per decode: its rows never share a ubatch with other sequences
            req = prefilling[0]
            chunk = req.pending[: self._n_batch]
            plan.append((req, chunk, len(chunk) == len(req.pending)))
        else:
            budget = self._n_batch
            for req in sorted(self._active, key=lambda r: (not r.out, r.admitted_at)):
                if budget <= 0:
                    break
                if not req.pending:
                    continue
                chunk = req.pending[:budget]
                plan.append((req, chunk, len(chunk) == len(req.pending)))
                budget -= len(chunk)
        if not plan:
            return
        b = self._batch
        i = 0
        out_idx: list[tuple[_Request, int]] = []
        for req, chunk, last in plan:
            pos = len(req.fed)
            for j, t in enumerate(chunk):
                b.token[i] = t
                b.pos[i] = pos + j
                if pos + j < req.joint_until:  # a shared-prefix token: also part of sequence 0
                    b.n_seq_id[i] = 2
                    b.seq_id[i][1] = PREFIX_SEQ
                else:
                    b.n_seq_id[i] = 1
                b.seq_id[i][0] = req.seq
                b.logits[i] = 1 if (last and j == len(chunk) - 1) else 0
                i += 1
            if last:
                out_idx.append((req, i - 1))
        b.n_tokens = i
        rc = C.llama_decode(self._ctx, b)
        if rc == 1:
            self._preempt(plan)
            return
        if rc != 0:
            for req, _, _ in plan:
                self._finish(req, "error", error=f"llama_decode failed with code {rc}")
            return
        self.stats.decode_calls += 1
        self.stats.max_batch_seqs = max(self.stats.max_batch_seqs, len(plan))
        self.stats.max_batch_groups = max(self.stats.max_batch_groups, len({r.group.gid for r, _, _ in plan}))
        for req, chunk, _ in plan:
            if len(req.out) == 0:
                self.stats.prompt_tokens_decoded += len(chunk)
            self._fed(req, chunk)
        for req, idx in out_idx:
            self._sample(req, idx)

    def _sample(self, req: _Request, idx: int) -> None:
        tok = int(C.llama_sampler_sample(req.sampler, self._ctx, idx))
        req.out.append(tok)
        self.stats.generated_tokens += 1
        if C.llama_vocab_is_eog(self._vocab, tok):
            self._finish(req, "stop")
            return
        prev_len = len(req.out_bytes)
        req.out_bytes.extend(self._piece(tok))
        stop = req.params.stop
        if stop:
            text = req.out_bytes.decode("utf-8", "ignore")
            look_from = max(0, len(req.out_bytes[:prev_len].decode("utf-8", "ignore")) - max(map(len, stop)))
            hits = [p for p in (text.find(s, look_from) for s in stop if s) if p >= 0]
            if hits:
                self._finish(req, "stop", text=text[: min(hits)])
                return
        if len(req.out) >= req.params.max_tokens:
            self._finish(req, "length")
            return
        req.pending = [tok]

    def _preempt(self, plan: list[tuple[_Request, list[int], bool]]) -> None:
        """KV cache full: push the newest worker request back to the queue (it restarts later), or fail."""
        self.stats.preemptions += 1
        victims = [r for r, _, _ in plan if r.session is None]
        if len(plan) > 1 and victims:
            victim = max(victims, key=lambda r: r.admitted_at)
            C.llama_memory_seq_rm(self._mem, victim.seq, -1, -1)
            self._free_seqs.append(victim.seq)
            C.llama_sampler_free(victim.sampler)
            victim.sampler = None
            victim.seq = -1
            self._end_joint(victim)  # its shared cells already fed stay in sequence 0 (tracked in _seq0)
            self._active.remove(victim)
            self._waiting.appendleft(victim)
            log(_log, "info", "kv cache full: request requeued", active=len(self._active))
            return
        self._free_idle_kv(keep_session=plan[0][0].session)
        b = self._batch
        if C.llama_decode(self._ctx, b) == 1:  # nothing left to free
            for req, _, _ in plan:
                self._finish(req, "error", error="the KV cache is full even with nothing else in it")
            return
        # the retry succeeded: account for it like a normal step
        self.stats.decode_calls += 1
        for req, chunk, _ in plan:
            self._fed(req, chunk)
        i = 0
        for req, chunk, last in plan:
            i += len(chunk)
            if last:
                self._sample(req, i - 1)

    def _finish(
        self,
        req: _Request,
        reason: FinishReason,
        *,
        text: str | None = None,
        error: str | None = None,
        release: bool = True,
    ) -> None:
        if req.result is not None:
            return
        if text is None:
            text = bytes(req.out_bytes).decode("utf-8", "replace")
        req.result = Generation(
            text=text,
            finish_reason=reason,
            prompt_tokens=len(req.tokens),
            completion_tokens=len(req.out),
            cached_tokens=req.cached,
            latency_s=time.monotonic() - req.t0,
            error=error,
        )
        if req.sampler is not None:
            C.llama_sampler_free(req.sampler)
            req.sampler = None
        self._end_joint(req)
        if release and req in self._active:
            self._active.remove(req)
            if req.session is not None:
                sess = self._sessions.get(req.session)
                if sess is not None:
                    sess.busy = False
                    if error is None:
                        sess.tokens = list(req.fed)
                    else:
                        self._release_session_seq(sess)
            elif req.seq >= 0:
                C.llama_memory_seq_rm(self._mem, req.seq, -1, -1)
                self._free_seqs.append(req.seq)
        req.done.set()

    def _piece(self, token: int, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = C.llama_token_to_piece(self._vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = C.llama_token_to_piece(self._vocab, token, buf, -n, 0, special)
        return buf.raw[:n]


class _PrefixError(BackendError):
    pass


def _batch_messages(system: str, prompt: str) -> list[Message]:
    msgs = [Message("system", system)] if system else []
    msgs.append(Message("user", prompt))
    return msgs


def _make_sampler(params: SamplingParams) -> Any:
    """One sampler chain per sequence: greedy at temperature 0, else top-p -> temperature -> seeded draw."""
    chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
    if params.temperature <= 0:
        C.llama_sampler_chain_add(chain, C.llama_sampler_init_greedy())
        return chain
    if params.top_p < 1.0:
        C.llama_sampler_chain_add(chain, C.llama_sampler_init_top_p(params.top_p, 1))
    C.llama_sampler_chain_add(chain, C.llama_sampler_init_temp(params.temperature))
    seed = params.seed if params.seed is not None else random.getrandbits(32)
    C.llama_sampler_chain_add(chain, C.llama_sampler_init_dist(seed & 0xFFFFFFFF))
    return chain


def _resolve(model: str) -> Path:
    p = Path(model).expanduser()
    if p.suffix == ".gguf" or p.exists():
        if not p.is_file():
            raise BackendError(f"model file not found: {p}")
        return p
    from models import resolve_model_path

    return Path(resolve_model_path(model))


def config_dict(config: LlamaConfig) -> dict[str, object]:
    d = asdict(config)
    d["n_seq_max"] = config.n_seq_max
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}
