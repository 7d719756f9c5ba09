"""The openai backend against a real llama-cpp-python server (SmolLM2-135M on 127.0.0.1), plus two tiny
loopback servers that misbehave on purpose (hang, 503) to check timeouts and retries."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import llama_cpp.server.app  # noqa: F401  (the real server the backend is tested against)
import pytest

from engine.backends import BackendError, ContextOverflowError, Message, SamplingParams, load_backend  # noqa: E402
from engine.backends.openai_compat import OpenAIBackend, OpenAIConfig  # noqa: E402
from tests.server_support import free_port, llama_cpp_server

pytestmark = pytest.mark.slow
N_CTX = 2048


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from models import ModelNotFoundError, resolve_model_path

    try:
        model = Path(resolve_model_path("smollm2-135m"))
    except ModelNotFoundError as e:
        pytest.fail(f"test model not installed: {e}")
    with llama_cpp_server(model, tmp_path_factory.mktemp("server") / "server.log", N_CTX) as base:
        yield f"{base}/v1"


@pytest.fixture(scope="module")
def backend(server_url: str) -> Iterator[OpenAIBackend]:
    b = load_backend(f"openai:{server_url}", n_ctx=N_CTX, max_concurrency=4)
    assert isinstance(b, OpenAIBackend)
    yield b
    b.close()


def test_batch_in_order_with_token_counts(backend: OpenAIBackend) -> None:
    prompts = ["What is the capital of France?", "Name a color.", "What is 2+2?"]
    params = SamplingParams(max_tokens=12)
    res = backend.batch("Answer in one short sentence.", prompts, params)
    assert len(res) == 3 and all(g.ok and g.text for g in res)
    assert all(g.prompt_tokens > 0 and 0 < g.completion_tokens <= 12 for g in res)
    # request order: each result matches the same prompt sent alone (greedy)
    alone = [backend.batch("Answer in one short sentence.", [p], params)[0].text for p in prompts]
    assert [g.text for g in res] == alone
    assert backend.info.n_ctx == N_CTX and backend.count_tokens("hello world") >= 2


def test_chat_and_overflow(backend: OpenAIBackend) -> None:
    g = backend.chat([Message("user", "Say hi.")], SamplingParams(max_tokens=8), session="root")
    assert g.ok and g.text
    with pytest.raises(ContextOverflowError) as ei:
        backend.chat([Message("user", "word " * 4000)], SamplingParams(max_tokens=8))
    assert ei.value.prompt_tokens > ei.value.available_tokens
    assert "too many" in str(ei.value)


def test_one_bad_prompt_does_not_fail_the_batch(backend: OpenAIBackend) -> None:
    res = backend.batch("", ["Say hi.", "word " * 4000, "Say bye."], SamplingParams(max_tokens=8))
    assert res[0].ok and res[2].ok
    assert not res[1].ok and res[1].finish_reason == "error" and "too many" in (res[1].error or "")


def test_connection_refused_is_a_clear_error() -> None:
    b = OpenAIBackend(
        OpenAIConfig(
            base_url=f"http://127.0.0.1:{free_port()}/v1",
            n_ctx=512,
            max_retries=1,
            retry_backoff_s=0.01,
            probe_timeout_s=0,
        )
    )
    try:
        with pytest.raises(BackendError, match=r"failed after 2 attempt\(s\).*ConnectError"):
            b.chat([Message("user", "hi")], SamplingParams(max_tokens=4))
    finally:
        b.close()


def test_timeout_then_retries_then_clear_error() -> None:
    """A server that accepts and never answers: every attempt times out, the error says so."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    b = OpenAIBackend(
        OpenAIConfig(
            base_url=f"http://127.0.0.1:{port}/v1", n_ctx=512, timeout_s=0.3, max_retries=2, retry_backoff_s=0.01
        )
    )
    try:
        t0 = time.monotonic()
        res = b.batch("", ["hi"], SamplingParams(max_tokens=4))
        assert not res[0].ok and "timed out after 0.3s" in (res[0].error or "")
        assert "3 attempt(s)" in (res[0].error or "")
        assert time.monotonic() - t0 < 5
    finally:
        b.close()
        srv.close()
        for c in accepted:
            c.close()


def test_transient_503_is_retried() -> None:
    calls = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            calls["n"] += 1
            if calls["n"] < 3:
                body, code = b'{"error": {"message": "busy"}}', 503
            else:
                body, code = (
                    json.dumps(
                        {
                            "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 5, "completion_tokens": 1},
                        }
                    ).encode(),
                    200,
                )
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    b = OpenAIBackend(
        OpenAIConfig(
            base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1", n_ctx=512, max_retries=2, retry_backoff_s=0.01
        )
    )
    try:
        g = b.chat([Message("user", "hi")], SamplingParams(max_tokens=4))
        assert g.text == "ok" and g.prompt_tokens == 5 and calls["n"] == 3
        calls["n"] = -10  # now more 503s than retries: a clear error naming the status
        with pytest.raises(BackendError, match="HTTP 503: busy"):
            b.chat([Message("user", "hi")], SamplingParams(max_tokens=4))
    finally:
        b.close()
        httpd.shutdown()


# -------------------------------------------------------------------------------------------------- serving


def test_streaming_on_text_and_grammar(backend: OpenAIBackend) -> None:
    pieces: list[str] = []
    g = backend.chat([Message("user", "Name three colors.")], SamplingParams(max_tokens=16), on_text=pieces.append)
    assert len(pieces) > 2 and "".join(pieces) == g.text and g.completion_tokens > 0
    yes_no = SamplingParams(max_tokens=8, grammar='root ::= "yes" | "no"')
    g = backend.chat([Message("user", "Is the sky blue? Answer yes or no.")], yes_no)
    assert g.text in ("yes", "no")
    # choices cannot be scored over HTTP: they are sent as their grammar and the reply is generated
    g = backend.chat([Message("user", "Is the sky blue?")], SamplingParams(max_tokens=8, choices=("yes", "no")))
    assert g.text in ("yes", "no") and g.choice_logprobs is None
    assert backend.healthy


def test_cancel_aborts_a_streamed_request_on_the_real_server(backend: OpenAIBackend) -> None:
    from engine.cancel import Cancelled, CancelToken

    tok = CancelToken()
    pieces: list[str] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 3:
            threading.Thread(target=tok.cancel).start()

    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        backend.chat(
            [Message("user", "Write a very long story about a dragon.")],
            SamplingParams(max_tokens=1500),
            cancel=tok,
            on_text=on_text,
        )
    assert time.monotonic() - t0 < 10 and len(pieces) < 200
    # the server stopped that generation: the next request is answered at once, not after 1500 tokens
    t1 = time.monotonic()
    assert backend.chat([Message("user", "Say hi.")], SamplingParams(max_tokens=4)).ok
    assert time.monotonic() - t1 < 8


def test_cancel_aborts_requests_a_server_has_not_answered() -> None:
    """A server that accepts and never answers (a queue, a long prefill): cancel closes every connection."""
    from engine.cancel import Cancelled, CancelToken

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    closed: list[float] = []
    open_conns: set[int] = set()  # connections accepted and not yet closed by the client
    lock = threading.Lock()

    def serve(conn: socket.socket) -> None:
        conn.settimeout(20)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
        finally:  # EOF or reset: the client went away
            with lock:
                open_conns.discard(id(conn))
                closed.append(time.monotonic())
            conn.close()

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with lock:
                open_conns.add(id(conn))
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    b = OpenAIBackend(OpenAIConfig(base_url=f"http://127.0.0.1:{port}/v1", n_ctx=512, timeout_s=30, max_retries=2))
    try:
        for streamed in (False, True):
            closed.clear()
            tok = CancelToken()
            threading.Timer(0.3, tok.cancel).start()
            t0 = time.monotonic()
            with pytest.raises(Cancelled):
                b.chat(
                    [Message("user", "hi")],
                    SamplingParams(max_tokens=4),
                    cancel=tok,
                    on_text=(lambda _p: None) if streamed else None,
                )
            assert time.monotonic() - t0 < 1.3
            deadline = time.monotonic() + 2
            while not closed and time.monotonic() < deadline:
                time.sleep(0.02)
            assert closed, "the HTTP connection was not closed"
        closed.clear()
        tok = CancelToken()
        threading.Timer(0.3, tok.cancel).start()
        t0 = time.monotonic()
        with pytest.raises(Cancelled):
            b.batch("", ["a", "b", "c"], SamplingParams(max_tokens=4), cancel=tok)
        assert time.monotonic() - t0 < 1.3
        deadline = time.monotonic() + 2
        while (len(closed) < 3 or open_conns) and time.monotonic() < deadline:
            time.sleep(0.02)
        # every connection the batch opened (one per prompt) is closed; a late close of an earlier phase's
        # connection may land here too, so the count is a floor and no connection may stay open
        assert len(closed) >= 3 and not open_conns
    finally:
        b.close()
        srv.close()
    b.close()  # idempotent
    assert not b.healthy
    with pytest.raises(BackendError, match="closed"):
        b.count_tokens("x")


def test_an_unreachable_server_fails_at_load_with_the_url_and_the_reason() -> None:
    """Issue 18, item 5: ``--worker openai:http://127.0.0.1:1/v1`` used to hang the first run in retries."""
    t0 = time.monotonic()
    with pytest.raises(BackendError, match=r"cannot reach the openai server at http://127\.0\.0\.1:1/v1: .*refused"):
        load_backend("openai:http://127.0.0.1:1/v1")
    assert time.monotonic() - t0 < 5


def test_a_worker_that_dies_during_a_run_ends_it_without_a_hang() -> None:
    """The worker answers the load, then goes away: the run ends at once with ``backend_error`` and the reason in
    its ``error``, the error is in its events, and the backend reports itself unhealthy (``/health`` then 503)."""
    from engine.backends.scripted import ScriptedBackend
    from engine.rlm import RLM

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    worker = load_backend(f"openai:http://127.0.0.1:{srv.server_address[1]}/v1", n_ctx=2048, retry_backoff_s=0.01)
    srv.shutdown()
    srv.server_close()  # the worker dies
    root = ScriptedBackend(lambda m: "```python\nans = llm_query('hi')\nFINAL('got ' + str(ans))\n```", name="r")
    rlm = RLM(root=root, worker=worker, trace=False, max_root_turns=3)
    events: list[dict[str, object]] = []
    try:
        t0 = time.monotonic()
        c = rlm.completion("some context", "a question?", on_event=lambda e, f: events.append({"event": e, **f}))
        assert time.monotonic() - t0 < 30
        assert c.partial and not c.answer.startswith("got ")
        assert c.finish_reason == "backend_error" and c.error is not None and "Connection refused" in c.error
        errs = [str(e.get("error")) for e in events if e["event"] == "subcall_end" and e.get("error")]
        assert errs and "Connection refused" in errs[0], events
        assert not worker.healthy
    finally:
        rlm.close()
        worker.close()


def test_outcore_run_with_an_unreachable_worker_is_one_line(tmp_path: Path) -> None:
    import subprocess

    from tests.server_support import OUTCORE

    ctx = tmp_path / "s.txt"
    ctx.write_text("some text")
    argv = [str(OUTCORE), "run", "--root", "smollm2-135m", "--worker", "openai:http://127.0.0.1:1/v1"]
    t0 = time.monotonic()
    r = subprocess.run([*argv, "--context", str(ctx), "q"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and time.monotonic() - t0 < 30
    lines = r.stderr.strip().splitlines()
    assert lines == ["outcore: error: cannot reach the openai server at http://127.0.0.1:1/v1: Connection refused"]
