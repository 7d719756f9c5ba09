"""One GGUF model and its llama.cpp context: loading, tokens, the chat template, and the KV operations.

Why one class owns every native pointer: freeing is then in one place, and every call made from a caller's thread
(tokenizing, rendering a template) goes through :meth:`LlamaModel.using`, which refuses to run once the model is
closing and makes ``close`` wait for calls in flight — so a late ``count_tokens`` raises BackendError instead of
reading freed memory. The KV/sampling methods (:class:`~engine.backends.llama.kv.KVOps`) are called by the decode
thread only, which the backend joins before it closes the model.
"""

from __future__ import annotations

import ctypes
import functools
import os
import random
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import llama_cpp as C

from engine.backends import llama_log
from engine.backends.base import BackendError, Message, SamplingParams
from engine.backends.chat_template import ChatTemplate
from engine.backends.llama.config import LlamaConfig
from engine.backends.llama.kv import Batch

_BACKEND_INIT = threading.Lock()
_backend_ready = False


def _ensure_backend_init() -> None:
    global _backend_ready
    with _BACKEND_INIT:
        if not _backend_ready:
            C.llama_backend_init()
            _backend_ready = True


@functools.cache
def _extra_buffers_safe() -> bool:
    """Whether weights may go to llama.cpp's extra CPU buffer types (AMX tiles, repacked layouts).

    Not where llama.cpp reports AMX_INT8: its AMX matrix multiply segfaults on Q4_K weights on some machines
    (ggml-org/llama.cpp#20824, closed unfixed). Measured on a Xeon with AMX_INT8 and a native build of
    llama-cpp-python 0.3.36: the first decode crashed with each of the three default models, and ``make demo``
    died with SIGSEGV. Without the extra buffers the weights stay in the plain CPU buffer, which every build has.
    """
    _ensure_backend_init()
    return b"AMX_INT8 = 1" not in C.llama_print_system_info()


@contextmanager
def safe_weight_buffers() -> Iterator[None]:
    """Load llama-cpp-python's high-level ``Llama`` (tests, the sub-call benchmark) with the same weight placement.

    ``Llama`` takes no parameter for it, so its default model parameters are wrapped while it loads.
    """
    default = C.llama_model_default_params

    def params() -> Any:
        p = default()
        p.use_extra_bufts = _extra_buffers_safe()
        return p

    C.llama_model_default_params = params
    try:
        yield
    finally:
        C.llama_model_default_params = default


def resolve_model(model: str) -> Path:
    """A catalog name or a path to a ``.gguf`` file -> the file."""
    p = Path(model).expanduser()
    if p.suffix == ".gguf" or p.exists():
        if not p.is_file():
            raise BackendError(f"model file not found: {p}")
        return p
    from models import resolve_model_path

    return Path(resolve_model_path(model))


def lcp(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def batch_messages(system: str, prompt: str) -> list[Message]:
    msgs = [Message("system", system)] if system else []
    msgs.append(Message("user", prompt))
    return msgs


class LlamaModel:
    """The loaded model, its context (``n_seq_max`` sequences, unified KV) and one reusable native batch."""

    def __init__(self, config: LlamaConfig, model_path: Path) -> None:
        self.config = config
        self.path = model_path
        llama_log.install(raw_stderr=config.verbose)
        _ensure_backend_init()
        self._users = 0
        self._closing = False
        self._cv = threading.Condition()

        mparams = C.llama_model_default_params()
        mparams.n_gpu_layers = 999 if config.n_gpu_layers < 0 else config.n_gpu_layers
        mparams.use_extra_bufts = _extra_buffers_safe()
        self._model = C.llama_model_load_from_file(str(model_path).encode(), mparams)
        if not self._model:
            raise BackendError(f"llama.cpp could not load the model file {model_path}")
        self._vocab = C.llama_model_get_vocab(self._model)

        self.n_threads = config.n_threads or os.cpu_count() or 1
        cparams = C.llama_context_default_params()
        cparams.n_ctx = config.n_ctx
        cparams.n_batch = config.n_batch
        cparams.n_ubatch = min(config.n_ubatch, config.n_batch)
        cparams.n_seq_max = config.n_seq_max
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = config.n_threads_batch or self.n_threads
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
        self.n_batch = int(C.llama_n_batch(self._ctx))
        self.n_ubatch = int(cparams.n_ubatch)
        self.n_vocab = int(C.llama_vocab_n_tokens(self._vocab))
        self._max_seqs_per_row = max(2, config.n_prefix_seqs + 1)
        self._batch = C.llama_batch_init(self.n_batch, 0, self._max_seqs_per_row)
        self._closed = False

        self._bos = int(C.llama_vocab_bos(self._vocab))
        self._add_bos = bool(C.llama_vocab_get_add_bos(self._vocab))
        self._bos_text = self._piece(self._bos, True).decode("utf-8", "ignore") if self._bos >= 0 else ""
        eos = int(C.llama_vocab_eos(self._vocab))
        eos_text = self._piece(eos, True).decode("utf-8", "ignore") if eos >= 0 else ""
        raw_template = C.llama_model_chat_template(self._model, None)
        self.template = ChatTemplate(raw_template.decode("utf-8") if raw_template else None, self._bos_text, eos_text)
        self._sys_cache: OrderedDict[tuple[str, bool], list[int]] = OrderedDict()
        self._grammar_ok: OrderedDict[str, bool] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifetime

    @contextmanager
    def using(self) -> Iterator[None]:
        """Run a caller-thread call against the native model, or raise BackendError once it is closing."""
        with self._cv:
            if self._closing:
                raise BackendError("the llama backend is closed")
            self._users += 1
        try:
            yield
        finally:
            with self._cv:
                self._users -= 1
                self._cv.notify_all()

    def close(self) -> None:
        """Free the context and the model once no caller-thread call is in flight. Idempotent."""
        with self._cv:
            self._closing = True
            while self._users:
                self._cv.wait()
            if self._closed:
                return
            self._closed = True
        C.llama_batch_free(self._batch)
        C.llama_free(self._ctx)
        C.llama_model_free(self._model)

    # ------------------------------------------------------------------ tokens and templates (any thread)

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        with self.using():
            return self._tokenize(text, special)

    def _tokenize(self, text: str, special: bool) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (C.llama_token * cap)()
        n = C.llama_tokenize(self._vocab, data, len(data), buf, cap, False, special)
        if n < 0:
            cap = -n
            buf = (C.llama_token * cap)()
            n = C.llama_tokenize(self._vocab, data, len(data), buf, cap, False, special)
        return list(buf[:n])

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The exact tokens a conversation is decoded as (chat template + generation prompt)."""
        text = self.template.render(messages)
        with self.using():
            toks = self._tokenize(text, True)
        if self._add_bos and self._bos >= 0 and not (self._bos_text and text.startswith(self._bos_text)):
            toks.insert(0, self._bos)
        return toks

    def system_prefix(self, system: str) -> list[int]:
        """Tokens every conversation that starts with this system message starts with, whatever follows.

        Found as the common prefix of two renderings that differ only in the user text, so it is exactly the part
        of the template that a shared-prefix sequence can hold for every request (worker batches and root chats).
        """
        key = (system, True)
        with self._lock:
            hit = self._sys_cache.get(key)
        if hit is not None:
            return hit
        a = self.prompt_tokens(batch_messages(system, "a"))
        b = self.prompt_tokens(batch_messages(system, "7"))
        toks = a[: lcp(a, b)]
        with self._lock:
            self._sys_cache[key] = toks
            while len(self._sys_cache) > 32:
                self._sys_cache.popitem(last=False)
        return toks

    def check_grammar(self, grammar: str) -> None:
        """Raise BackendError (in the caller's thread, before anything is queued) if llama.cpp rejects a GBNF."""
        with self._lock:
            ok = self._grammar_ok.get(grammar)
        if ok is None:
            with self.using():
                smpl = C.llama_sampler_init_grammar(self._vocab, grammar.encode("utf-8"), b"root")
                ok = bool(smpl)
                if ok:
                    C.llama_sampler_free(smpl)
            with self._lock:
                self._grammar_ok[grammar] = ok
                while len(self._grammar_ok) > 64:
                    self._grammar_ok.popitem(last=False)
        if not ok:
            raise BackendError(
                "invalid grammar: llama.cpp could not parse the GBNF (it needs a rule named 'root'; the parse error "
                "is in the log as an outcore.llama_cpp event)"
            )

    def _piece(self, token: int, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = C.llama_token_to_piece(self._vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = C.llama_token_to_piece(self._vocab, token, buf, -n, 0, special)
        return buf.raw[:n]

    # ------------------------------------------------------------------ KVOps (decode thread only)

    def seq_rm(self, seq: int, p0: int, p1: int) -> None:
        C.llama_memory_seq_rm(self._mem, seq, p0, p1)

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        C.llama_memory_seq_cp(self._mem, src, dst, p0, p1)

    def decode(self, batch: Batch) -> int:
        b = self._batch
        n = len(batch)
        if n > self.n_batch:
            raise BackendError(f"internal: a decode of {n} rows exceeds n_batch={self.n_batch}")
        for i in range(n):
            b.token[i] = batch.tokens[i]
            b.pos[i] = batch.pos[i]
            seqs = batch.seqs[i]
            b.n_seq_id[i] = len(seqs)
            for k, s in enumerate(seqs):
                b.seq_id[i][k] = s
            b.logits[i] = 1 if batch.logits[i] else 0
        b.n_tokens = n
        return int(C.llama_decode(self._ctx, b))

    def new_sampler(self, params: SamplingParams) -> Any:
        """One sampler chain per request: [grammar ->] greedy at temperature 0, else top-p -> temperature -> draw."""
        chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
        if params.grammar:
            g = C.llama_sampler_init_grammar(self._vocab, params.grammar.encode("utf-8"), b"root")
            if not g:
                C.llama_sampler_free(chain)
                raise BackendError("invalid grammar: llama.cpp could not parse the GBNF")
            C.llama_sampler_chain_add(chain, g)
        if params.temperature <= 0:
            C.llama_sampler_chain_add(chain, C.llama_sampler_init_greedy())
            return chain
        if params.top_p < 1.0:
            C.llama_sampler_chain_add(chain, C.llama_sampler_init_top_p(params.top_p, 1))
        C.llama_sampler_chain_add(chain, C.llama_sampler_init_temp(params.temperature))
        seed = params.seed if params.seed is not None else random.getrandbits(32)
        C.llama_sampler_chain_add(chain, C.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    def free_sampler(self, sampler: Any) -> None:
        C.llama_sampler_free(sampler)

    def sample(self, sampler: Any, row: int) -> int:
        return int(C.llama_sampler_sample(sampler, self._ctx, row))

    def logits(self, row: int) -> Any:
        """The raw logits of ``row`` of the last decode (a ctypes float array of n_vocab; tests and probes)."""
        return C.llama_get_logits_ith(self._ctx, row)

    def token_logits(self, row: int, tokens: Sequence[int]) -> list[float]:
        arr = self.logits(row)
        return [float(arr[t]) for t in tokens]

    def is_eog(self, token: int) -> bool:
        return bool(C.llama_vocab_is_eog(self._vocab, token))

    def piece(self, token: int) -> bytes:
        return self._piece(token, False)

    def save_seq(self, path: Path, seq: int, tokens: Sequence[int]) -> bool:
        arr = (C.llama_token * len(tokens))(*tokens)
        return int(C.llama_state_seq_save_file(self._ctx, str(path).encode(), seq, arr, len(tokens))) != 0

    def load_seq(self, path: Path, seq: int, tokens: Sequence[int]) -> bool:
        C.llama_memory_seq_rm(self._mem, seq, -1, -1)
        cap = len(tokens) + 1
        out = (C.llama_token * cap)()
        n_out = ctypes.c_size_t(0)
        nread = C.llama_state_seq_load_file(self._ctx, str(path).encode(), seq, out, cap, ctypes.byref(n_out))
        if nread == 0 or list(out[: n_out.value]) != list(tokens):
            C.llama_memory_seq_rm(self._mem, seq, -1, -1)
            return False
        return True

    @property
    def settings(self) -> dict[str, object]:
        """The context settings a saved prefix state depends on (part of its file key)."""
        return {
            "n_ctx": self.n_ctx,
            "n_seq_max": self.config.n_seq_max,
            "kv_unified": True,
            "flash_attn": self.config.flash_attn,
            "n_ubatch": self.n_ubatch,
            "llama_cpp": llama_cpp.__version__,
        }

    @property
    def chat_template_kind(self) -> str:
        return "gguf" if not self.template.is_fallback else "chatml-fallback"
