"""The ``openai`` backend: any OpenAI-compatible chat-completions server (llama-server, vLLM, SGLang, ...).

Why: a worker pool can outgrow one machine; the RLM loop should not care where sub-calls run. Requests, responses
and server-sent events go through the official ``openai`` SDK, which every OpenAI-compatible server is tested
against; ``batch`` sends the prompts concurrently (the server batches them) over one connection pool. Retries on
transient failures (connection errors, 429, 5xx) are done here, not by the SDK, because the SDK's backoff sleeps
cannot be cut short by a cancel token. Errors carry the URL, the status and the server's message so a person — or
the root model — can act on them. Token counts come from the server's ``usage`` block; ``count_tokens`` uses the
server's tokenizer route, remembering which one answers.

Fail fast: the server is probed on load (a TCP connect with a short timeout), so a URL where nothing listens is
one clear error at start-up, not a run hung in retries; a connection refused during a run raises
:class:`WorkerGoneError` for the whole batch and marks the backend unhealthy until a request succeeds again.

Cancellation aborts the HTTP request itself, not just the wait for it: a request made with a cancel token runs on
a client without keep-alive, its socket is captured when it connects (a request hook sets the transport's
``trace`` extension), and the token's callback shuts that socket down, which wakes the blocked read at once —
whether the server is still queueing the request, prefilling, or streaming. The server sees the connection close
and stops (llama_cpp.server, llama-server and vLLM all stop generating for a closed client). ``on_text`` uses
``stream: true``; ``SamplingParams.grammar`` is sent as the ``grammar`` field (llama_cpp.server, llama-server);
``choices`` are sent as their grammar (the reply is generated, ``choice_logprobs`` stays None).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2 as httpx  # the HTTP library the openai SDK (3.x) is built on: one client stack for both
import openai

from engine.backends.base import (
    BackendError,
    BackendInfo,
    ContextOverflowError,
    FinishReason,
    Generation,
    Message,
    SamplingParams,
    TextCallback,
    choice_grammar,
)
from engine.cancel import Cancelled, raise_if_cancelled
from engine.log import get_logger, log

if TYPE_CHECKING:
    from engine.cancel import CancelToken

_log = get_logger("backend.openai")


class WorkerGoneError(BackendError):
    """The server refused the connection on every attempt: it died (or was never there)."""


_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class OpenAIConfig:
    """Where the server is and how patiently to talk to it.

    ``base_url`` ends with ``/v1`` (e.g. ``http://127.0.0.1:8080/v1``). ``n_ctx`` is the context the server was
    started with; 0 asks the server (llama.cpp-style ``/props`` or ``/v1/models`` metadata) and falls back to 4096.
    """

    base_url: str
    model: str = "default"
    api_key: str | None = None
    timeout_s: float = 120.0
    connect_timeout_s: float = 5.0
    max_retries: int = 2
    retry_backoff_s: float = 0.5
    max_concurrency: int = 8
    n_ctx: int = 0
    probe_timeout_s: float = 3.0  # the TCP connect tried on load (0: no probe)


class OpenAIBackend:
    """A :class:`~engine.backends.base.Backend` over HTTP. Thread-safe (httpx.Client is)."""

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self._base = config.base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(max_connections=max(config.max_concurrency, 1) + 2),
        )
        # requests that may be cancelled get a connection of their own (no keep-alive), so aborting one never
        # touches another request's connection
        self._abortable = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(max_connections=max(config.max_concurrency, 1) + 2, max_keepalive_connections=0),
            event_hooks={"request": [_attach_trace]},
        )
        timeout = httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s)
        key = config.api_key or "none"
        self._sdk = openai.OpenAI(
            base_url=self._base, api_key=key, max_retries=0, timeout=timeout, http_client=self._client
        )
        self._sdk_abortable = openai.OpenAI(
            base_url=self._base, api_key=key, max_retries=0, timeout=timeout, http_client=self._abortable
        )
        self._pool = ThreadPoolExecutor(max_workers=max(config.max_concurrency, 1), thread_name_prefix="outcore-openai")
        self._closed = False
        self._lock = threading.Lock()
        self._tokenize: tuple[str, str, str] | None = None  # the tokenizer URL that answered (count_tokens)
        self._tokenize_tried = False
        self._gone = False  # the last request found nothing listening (healthy turns False until one succeeds)
        if config.probe_timeout_s > 0:
            self._probe(config.probe_timeout_s)
        n_ctx = config.n_ctx or self._discover_n_ctx() or 4096
        self._info = BackendInfo(name=config.model, backend="openai", n_ctx=n_ctx, extra={"base_url": self._base})

    @property
    def info(self) -> BackendInfo:
        return self._info

    @property
    def healthy(self) -> bool:
        return not self._closed and not self._gone

    # ------------------------------------------------------------------ protocol

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
        # ``session`` needs nothing here: servers with prompt caching (llama-server cache_prompt, vLLM APC)
        # reuse the shared history on their side. ``owner`` neither: the server schedules.
        gen = self._complete([{"role": m.role, "content": m.content} for m in messages], params, cancel, on_text)
        if gen.error is not None:
            raise BackendError(gen.error)
        return gen

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

        def one(prompt: str) -> Generation:
            msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
            try:
                return self._complete(msgs, params, cancel, None)
            except ContextOverflowError as e:
                return Generation(text="", finish_reason="error", prompt_tokens=e.prompt_tokens, error=str(e))
            except WorkerGoneError:
                raise  # nothing listens any more: the batch (and the run) ends with an error, not a retry loop
            except BackendError as e:
                return Generation(text="", finish_reason="error", error=str(e))
            except Cancelled:
                return Generation(text="", finish_reason="error", error="cancelled")

        futures = [self._pool.submit(one, p) for p in prompts]
        wait_futures(futures)
        raise_if_cancelled(cancel)
        return [f.result() for f in futures]

    def count_tokens(self, text: str) -> int:
        """The server's tokenizer when it offers one (llama.cpp ``/tokenize``, llama-cpp-python
        ``/extras/tokenize``); otherwise ~4 characters per token.

        Why it remembers: the first call finds which of the two URLs this server answers (or that neither does);
        later calls go straight there instead of paying a failed request each time.
        """
        self._check_open()
        root = self._base[: -len("/v1")] if self._base.endswith("/v1") else self._base
        candidates = [
            (f"{root}/extras/tokenize/count", "input", "count"),
            (f"{root}/tokenize", "content", "tokens"),
        ]
        if self._tokenize_tried:
            candidates = [self._tokenize] if self._tokenize is not None else []
        for url, field, key in candidates:
            try:
                r = self._client.post(url, json={field: text}, timeout=10.0)
                if r.status_code == 200:
                    val = r.json()[key]
                    self._tokenize = (url, field, key)
                    self._tokenize_tried = True
                    return len(val) if isinstance(val, list) else int(val)
            except (httpx.TransportError, ValueError, KeyError, TypeError):
                if self._tokenize_tried:  # the known tokenizer failed this once (a restart?): estimate
                    return (len(text) + 3) // 4
                continue
        self._tokenize_tried = True
        return (len(text) + 3) // 4

    def end_session(self, session: str) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.shutdown(wait=True)
        self._client.close()
        self._abortable.close()

    # ------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("the openai backend is closed")

    def _probe(self, timeout_s: float) -> None:
        """Fail at load, with the URL and the reason, when nothing listens there (issue: a worker at a closed port
        used to hang the first run in retries); a TCP connect is enough and never waits on a slow server."""
        url = httpx.URL(self._base)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.host, port), timeout=timeout_s).close()
        except OSError as e:
            reason = e.strerror or type(e).__name__
            if isinstance(e, TimeoutError | socket.timeout):
                reason = f"no answer to a TCP connect within {timeout_s:g}s"
            self.close()
            raise BackendError(f"cannot reach the openai server at {self._base}: {reason}") from None

    def _discover_n_ctx(self) -> int | None:
        root = self._base[: -len("/v1")] if self._base.endswith("/v1") else self._base
        try:
            r = self._client.get(f"{root}/props", timeout=5.0)
            if r.status_code == 200:
                n = r.json().get("default_generation_settings", {}).get("n_ctx")
                if isinstance(n, int) and n > 0:
                    return n
        except (httpx.HTTPError, ValueError):
            pass
        try:
            r = self._client.get(f"{self._base}/models", timeout=5.0)
            if r.status_code == 200:
                for m in r.json().get("data", []):
                    for k in ("max_model_len", "n_ctx", "context_length"):
                        v = m.get(k) or (m.get("meta") or {}).get(k)
                        if isinstance(v, int) and v > 0:
                            return v
        except (httpx.HTTPError, ValueError):
            pass
        return None

    def _complete(
        self,
        messages: list[dict[str, str]],
        params: SamplingParams,
        cancel: CancelToken | None = None,
        on_text: TextCallback | None = None,
    ) -> Generation:
        """One chat completion through the SDK, retried here (not by the SDK: its backoff sleeps cannot be cut
        short by a cancel token), with the request's sockets shut down when ``cancel`` fires."""
        self._check_open()
        raise_if_cancelled(cancel)
        kwargs = self._request(messages, params)
        url = f"{self._base}/chat/completions"
        t0 = time.monotonic()
        last_err = ""
        gone = False
        abort = _Abort()
        remove = cancel.on_cancel(abort.fire) if cancel is not None else None
        sdk = self._sdk_abortable if cancel is not None else self._sdk
        _current.abort = abort if cancel is not None else None
        try:
            for attempt in range(self.config.max_retries + 1):
                if attempt:
                    backoff = self.config.retry_backoff_s * (2 ** (attempt - 1))
                    if cancel is not None and cancel.wait(backoff):
                        raise Cancelled(getattr(cancel, "reason", None) or "cancelled")
                    if cancel is None:
                        time.sleep(backoff)
                try:
                    if on_text is not None:
                        gen = self._stream(sdk, kwargs, t0, on_text)
                        abort.raise_if_fired(cancel)  # a stream cut by the abort is not a reply
                    else:
                        gen = _generation(sdk.chat.completions.create(**kwargs), t0, url)
                    self._gone = False
                    return gen
                except openai.APIStatusError as e:
                    detail = _error_text(e.response)
                    overflow = _overflow_numbers(detail)
                    if overflow is not None:
                        raise ContextOverflowError(*overflow) from None
                    last_err, gone = f"HTTP {e.status_code}: {detail}", False
                    if e.status_code not in _RETRY_STATUS:
                        break
                except (openai.APIConnectionError, httpx.TransportError) as e:
                    abort.raise_if_fired(cancel)
                    cause = e.__cause__ if isinstance(e, openai.APIConnectionError) and e.__cause__ else e
                    gone = isinstance(cause, httpx.ConnectError)
                    if isinstance(e, openai.APITimeoutError) or isinstance(cause, httpx.TimeoutException):
                        last_err = f"timed out after {self.config.timeout_s:g}s"
                    else:
                        last_err = f"{type(cause).__name__}: {cause}"
                    log(_log, "warning", "request failed", url=url, attempt=attempt + 1, error=last_err)
        finally:
            _current.abort = None
            if remove is not None:
                remove()
        msg = f"openai backend: POST {url} failed after {attempt + 1} attempt(s): {last_err}"
        self._gone = gone
        raise WorkerGoneError(msg) if gone else BackendError(msg)

    def _request(self, messages: list[dict[str, str]], params: SamplingParams) -> dict[str, Any]:
        """The SDK's keyword arguments for one chat completion (``grammar`` as an extra body field)."""
        extra: dict[str, Any] = {}
        if params.choices:
            extra["grammar"] = choice_grammar(params.choices)
        elif params.grammar is not None:
            extra["grammar"] = params.grammar
        kwargs: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed if params.seed is not None else openai.omit,
            "stop": list(params.stop) if params.stop else openai.omit,
            "extra_body": extra or None,
        }
        return kwargs

    def _stream(self, sdk: openai.OpenAI, kwargs: dict[str, Any], t0: float, on_text: TextCallback) -> Generation:
        """One streamed request: ``on_text`` gets each content delta as it arrives (the SDK parses the events)."""
        parts: list[str] = []
        reason = "stop"
        usage: Any = None
        stream = sdk.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
        try:
            for chunk in stream:
                usage = chunk.usage or usage
                for choice in chunk.choices or []:
                    piece = choice.delta.content if choice.delta is not None else None
                    if piece:
                        parts.append(piece)
                        on_text(piece)
                    reason = choice.finish_reason or reason
        except ValueError as e:  # not JSON: not an OpenAI-compatible stream
            raise BackendError(f"openai backend: unexpected stream data from {self._base}: {e}") from e
        finally:
            stream.close()
        details = getattr(usage, "prompt_tokens_details", None)
        return Generation(
            text="".join(parts),
            finish_reason="length" if reason == "length" else "stop",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or len(parts)),
            cached_tokens=int(getattr(details, "cached_tokens", 0) or 0),
            latency_s=time.monotonic() - t0,
        )


def _generation(resp: Any, t0: float, url: str) -> Generation:
    """A ``ChatCompletion`` as a :class:`Generation`; a body that is not one is a clear BackendError."""
    try:
        choice = resp.choices[0]
        text = choice.message.content or ""
        reason = choice.finish_reason or "stop"
        usage = resp.usage
        details = getattr(usage, "prompt_tokens_details", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    except (AttributeError, IndexError, TypeError, ValueError) as e:
        raise BackendError(f"openai backend: unexpected response from {url}: {e}: {str(resp)[:300]}") from e
    finish: FinishReason = "length" if reason == "length" else "stop"
    return Generation(
        text=text,
        finish_reason=finish,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=int(getattr(details, "cached_tokens", 0) or 0),
        latency_s=time.monotonic() - t0,
    )


class _Current(threading.local):
    abort: _Abort | None = None


_current = _Current()  # the abort of the request this thread is sending (read by the httpx request hook)


def _attach_trace(request: httpx.Request) -> None:
    """httpx request hook: hand the request's socket to its :class:`_Abort` as it connects."""
    abort = _current.abort
    if abort is not None:
        request.extensions["trace"] = abort.trace


class _Abort:
    """Captures the sockets of one request as they connect, and shuts them down when the request is cancelled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self.fired = False

    def trace(self, name: str, info: dict[str, Any]) -> None:
        if name not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._socks.append(sock)
            fired = self.fired
        if fired:
            _shutdown(sock)

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            socks = list(self._socks)
        for sock in socks:
            _shutdown(sock)

    def raise_if_fired(self, cancel: CancelToken | None) -> None:
        if self.fired or (cancel is not None and cancel.is_set()):
            raise Cancelled(getattr(cancel, "reason", None) or "cancelled")


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _error_text(r: httpx.Response) -> str:
    try:
        data = r.json()
    except ValueError:
        return r.text[:500]
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        return str(err.get("message") or err.get("detail") or err)[:500]
    return str(err)[:500]


def _overflow_numbers(detail: str) -> tuple[int, int, str] | None:
    """Recognise the servers' context-length errors and extract (prompt tokens, available tokens)."""
    import re

    low = detail.lower()
    if "context" not in low and "too long" not in low:
        return None
    # llama-cpp-python: "Requested tokens (5031) exceed context window of 2048"
    m = re.search(r"requested tokens \((\d+)\) exceed context window of (\d+)", low)
    if m:
        return int(m.group(1)), int(m.group(2)), "prompt"
    # vLLM / OpenAI: "maximum context length is 4096 tokens ... you requested 5000 tokens"
    m = re.search(r"maximum context length is (\d+).*?(\d+) tokens", low)
    if m:
        return int(m.group(2)), int(m.group(1)), "prompt"
    # llama-server: "the request exceeds the available context size (n_prompt_tokens = 5000, n_ctx = 4096)"
    m = re.search(r"n_prompt_tokens\D+(\d+).*?n_ctx\D+(\d+)", low)
    if m:
        return int(m.group(1)), int(m.group(2)), "prompt"
    return None
