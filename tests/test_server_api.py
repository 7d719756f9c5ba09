"""``outcore serve`` over real HTTP: the official ``openai`` client, every malformed request, auth, limits, runs,
sessions, cancellation and shutdown.

The server is a live process on 127.0.0.1 (``tests.server_support``): the real app, uvicorn and Wasm sandbox, with
RLMs whose root and worker replies are scripted, so each behaviour is asserted exactly and fast. The real models
are exercised in ``test_server_models.py``.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.server_support import ServerProcess, start_scripted


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    p = start_scripted(
        log,
        "--load-delay",
        "1.0",
        "--set",
        "max_body_bytes=200000",
        "--set",
        "max_context_chars=50000",
        "--set",
        "keepalive_s=0.1",
        "--set",
        "max_running=4",
        "--set",
        "max_queue=4",
    )
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def client(srv: ServerProcess) -> openai.OpenAI:
    srv.wait_ready(60)
    return openai.OpenAI(base_url=srv.base + "/v1", api_key="unused", max_retries=0, timeout=60)


def post(srv: ServerProcess, path: str, body: Any = None, *, raw: bytes | None = None, **kw: Any) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
    return httpx.post(srv.base + path, content=content, headers=headers, timeout=60, **kw)


def chat_body(content: str = "hello", model: str = "scripted-quick", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def assert_envelope(r: httpx.Response, status: int, type_: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"message", "type", "param", "code"} <= set(err)
    assert err["message"] and "Traceback" not in r.text
    if type_:
        assert err["type"] == type_, err
    return err


# ---------------------------------------------------------------------------------------------------- health


def test_health_503_while_loading_then_200(srv: ServerProcess) -> None:
    saw = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        try:
            r = httpx.get(srv.base + "/health", timeout=2)
        except httpx.HTTPError:
            time.sleep(0.05)
            continue
        if r.status_code == 503:
            saw = r
        if r.status_code == 200:
            break
        time.sleep(0.05)
    assert saw is not None, "never saw 503 while the models loaded"
    err = assert_envelope(saw, 503, "unavailable_error")
    assert err["message"] == "Loading model"
    assert r.status_code == 200 and r.json() == {"status": "ok"}


# ---------------------------------------------------------------------------------------------------- openai client


def test_openai_client_models_chat_completions(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["scripted-session", "scripted-slow", "scripted-quick", "scripted-context"]
    raw = client.chat.completions.with_raw_response.create(
        model="scripted-quick", messages=[{"role": "user", "content": "Say OK."}]
    )
    c = raw.parse()
    run_id = raw.headers["x-outcore-run-id"]
    assert c.choices[0].message.content == "quick: noted"
    assert c.choices[0].finish_reason == "stop"
    assert c.usage is not None and c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens
    extra = c.model_extra["outcore"]  # type: ignore[index]
    assert extra["run_id"] == run_id and extra["finish_reason"] == "final"
    assert set(extra["usage_by_role"]) >= {"root", "worker"}

    t = client.completions.create(model="scripted-quick", prompt="Say OK.")
    assert t.choices[0].text == "quick: noted" and t.object == "text_completion"


def test_openai_client_streaming_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="scripted-quick",
        messages=[{"role": "user", "content": "Say OK."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "quick: noted"
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert [ch.choices[0].finish_reason for ch in finals] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert all(ch.usage is None for ch in chunks[:-1])

    tstream = client.completions.create(model="scripted-quick", prompt="Say OK.", stream=True)
    assert "".join(ch.choices[0].text for ch in tstream if ch.choices) == "quick: noted"


def test_openai_client_raises_its_own_exceptions(client: openai.OpenAI, srv: ServerProcess) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "nope" in e.value.message
    with pytest.raises(openai.BadRequestError) as e2:
        client.chat.completions.create(model="scripted-quick", messages=[])
    assert "messages" in e2.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="scripted-quick", messages=[{"role": "user", "content": "x"}], n=2)


def test_raw_stream_has_progress_comments_and_done(srv: ServerProcess, client: openai.OpenAI) -> None:
    with httpx.stream(
        "POST", srv.base + "/v1/chat/completions", json=chat_body("go", "scripted-slow", stream=True), timeout=60
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-outcore-run-id"].startswith("run-")
        lines = [ln for ln in r.iter_lines() if ln]
    comments = [ln for ln in lines if ln.startswith(":")]
    progress = [json.loads(ln.split(" ", 2)[2]) for ln in comments if ln.startswith(": outcore {")]
    kinds = {p["event"] for p in progress}
    assert {"root_turn", "cell", "subcall_end"} <= kinds, kinds
    assert ": ping" in comments  # keep-alive while the scripted models sleep (keepalive_s = 0.1)
    data = [ln for ln in lines if ln.startswith("data: ")]
    assert data[-1] == "data: [DONE]"
    last = json.loads(data[-2][6:])
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["outcore"]["finish_reason"] == "final"


# ---------------------------------------------------------------------------------------------------- malformed


MALFORMED: list[tuple[str, str, bytes | dict[str, Any], int, str | None]] = [
    ("bad json", "/v1/chat/completions", b'{"model": "scripted-quick", "messages": [', 400, None),
    ("empty body", "/v1/chat/completions", b"", 400, None),
    ("not an object", "/v1/chat/completions", b"[1, 2]", 400, None),
    ("missing model", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, 400, "model"),
    ("missing messages", "/v1/chat/completions", {"model": "scripted-quick"}, 400, "messages"),
    ("messages not a list", "/v1/chat/completions", {"model": "scripted-quick", "messages": "hi"}, 400, "messages"),
    (
        "model wrong type",
        "/v1/chat/completions",
        {"model": 7, "messages": [{"role": "user", "content": "x"}]},
        400,
        "model",
    ),
    ("empty messages", "/v1/chat/completions", {"model": "scripted-quick", "messages": []}, 400, "messages"),
    (
        "bad role",
        "/v1/chat/completions",
        {"model": "scripted-quick", "messages": [{"role": "robot", "content": "x"}]},
        400,
        "messages.0.role",
    ),
    (
        "content wrong type",
        "/v1/chat/completions",
        {"model": "scripted-quick", "messages": [{"role": "user", "content": 5}]},
        400,
        None,
    ),
    (
        "image part",
        "/v1/chat/completions",
        {
            "model": "scripted-quick",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        },
        400,
        None,
    ),
    (
        "last message not user",
        "/v1/chat/completions",
        {
            "model": "scripted-quick",
            "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
        },
        400,
        "messages",
    ),
    ("empty user message", "/v1/chat/completions", chat_body(""), 400, "messages"),
    ("temperature out of range", "/v1/chat/completions", chat_body(temperature=5), 400, "temperature"),
    ("max_tokens zero", "/v1/chat/completions", chat_body(max_tokens=0), 400, "max_tokens"),
    ("stream not bool", "/v1/chat/completions", chat_body(stream="yes"), 400, "stream"),
    ("n=3", "/v1/chat/completions", chat_body(n=3), 400, "n"),
    ("tools", "/v1/chat/completions", chat_body(tools=[{"type": "function"}]), 400, "tools"),
    ("logprobs", "/v1/chat/completions", chat_body(logprobs=True), 400, "logprobs"),
    ("penalty", "/v1/chat/completions", chat_body(presence_penalty=0.5), 400, "presence_penalty"),
    ("too many stops", "/v1/chat/completions", chat_body(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
    (
        "stream_options without stream",
        "/v1/chat/completions",
        chat_body(stream_options={"include_usage": True}),
        400,
        "stream_options",
    ),
    ("unknown limit", "/v1/chat/completions", chat_body(limits={"max_rooot_turns": 2}), 400, "limits"),
    ("negative limit", "/v1/chat/completions", chat_body(limits={"max_root_turns": -1}), 400, "limits.max_root_turns"),
    (
        "limit above the model's",
        "/v1/chat/completions",
        chat_body(limits={"max_root_turns": 1000}),
        400,
        "limits.max_root_turns",
    ),
    (
        "unknown context id",
        "/v1/chat/completions",
        chat_body(context_id="ctx-000000000000000000000000"),
        404,
        "context_id",
    ),
    ("bad session id", "/v1/chat/completions", chat_body(session_id="no spaces allowed"), 400, "session_id"),
    ("prompt token array", "/v1/completions", {"model": "scripted-quick", "prompt": [1, 2, 3]}, 400, "prompt"),
    ("missing prompt", "/v1/completions", {"model": "scripted-quick"}, 400, "prompt"),
    ("echo", "/v1/completions", {"model": "scripted-quick", "prompt": "x", "echo": True}, 400, None),
]


@pytest.mark.parametrize(("name", "path", "body", "status", "param"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_requests_get_clear_4xx(
    client: openai.OpenAI, srv: ServerProcess, name: str, path: str, body: Any, status: int, param: str | None
) -> None:
    r = post(srv, path, raw=body) if isinstance(body, bytes) else post(srv, path, body)
    err = assert_envelope(r, status)
    assert err["type"] in ("invalid_request_error", "not_found_error")
    if param is not None:
        assert err["param"] == param, err


def test_unknown_model_route_and_method(client: openai.OpenAI, srv: ServerProcess) -> None:
    err = assert_envelope(post(srv, "/v1/chat/completions", chat_body(model="gpt-9")), 404, "not_found_error")
    assert err["code"] == "model_not_found" and "scripted-quick" in err["message"]
    assert_envelope(httpx.get(srv.base + "/v1/nothing-here"), 404, "not_found_error")
    assert_envelope(httpx.get(srv.base + "/v1/chat/completions"), 405)


def test_context_over_the_configured_maximum(client: openai.OpenAI, srv: ServerProcess) -> None:
    big = "word " * 12_000  # 60,000 characters > max_context_chars = 50,000 (and < the 200 kB body limit)
    err = assert_envelope(
        post(srv, "/v1/chat/completions", chat_body(big + "\nWhat is it?")), 400, "exceed_context_size_error"
    )
    assert "50,000" in err["message"]


def test_body_over_the_limit_gets_413(client: openai.OpenAI, srv: ServerProcess) -> None:
    big = chat_body("x" * 300_000)
    assert_envelope(post(srv, "/v1/chat/completions", big), 413, "request_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        data = json.dumps(big).encode()
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    r = httpx.post(srv.base + "/v1/chat/completions", content=chunks(), timeout=30)
    assert_envelope(r, 413, "request_too_large")
    assert httpx.get(srv.base + "/health").status_code == 200


def test_errors_are_logged_as_json_lines_with_run_id(client: openai.OpenAI, srv: ServerProcess) -> None:
    post(srv, "/v1/chat/completions", chat_body(model="gpt-9"))
    records = []
    for ln in srv.log_lines():
        try:
            records.append(json.loads(ln))
        except json.JSONDecodeError:
            continue
    fails = [r for r in records if r.get("msg") == "request failed"]
    assert any(r["status"] == 404 and r["code"] == "model_not_found" and "run" in r for r in fails)
    assert not any("Traceback" in ln for ln in srv.log_lines() if not ln.startswith("{"))


# ---------------------------------------------------------------------------------------------------- contexts


def test_uploaded_context_referenced_by_id(client: openai.OpenAI, srv: ServerProcess) -> None:
    corpus = ("The keeper's compass was brass. " * 600).encode()
    r = httpx.post(srv.base + "/v1/contexts?filename=book.txt", content=corpus, timeout=30)
    assert r.status_code == 200, r.text
    ctx = r.json()
    assert ctx["bytes"] == len(corpus) and ctx["id"].startswith("ctx-")
    c = client.chat.completions.create(
        model="scripted-context",
        messages=[{"role": "user", "content": "How long is it?"}],
        extra_body={"context_id": ctx["id"]},
    )
    assert c.choices[0].message.content == f"chars={len(corpus)}"
    listed = httpx.get(srv.base + "/v1/contexts").json()["data"]
    assert ctx["id"] in [x["id"] for x in listed]
    # the same store in the OpenAI Files API shape, through the official client
    f = client.files.create(file=("notes.txt", b"alpha beta gamma\n" * 50), purpose="assistants")
    assert f.id.startswith("file-") and f.bytes == 850 and f.filename == "notes.txt"
    c2 = client.chat.completions.create(
        model="scripted-context",
        messages=[{"role": "user", "content": "How long is it?"}],
        extra_body={"context_id": f.id},
    )
    assert c2.choices[0].message.content == "chars=850"
    assert client.files.delete(f.id).deleted
    bad = httpx.post(srv.base + "/v1/contexts", content=b"\xff\xfe\x00binary", timeout=30)
    assert_envelope(bad, 400)
    assert httpx.delete(srv.base + f"/v1/contexts/{ctx['id']}").status_code == 200


def test_history_is_context_and_huge_single_message_works(client: openai.OpenAI) -> None:
    c = client.chat.completions.create(
        model="scripted-context",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Earlier question"},
            {"role": "assistant", "content": "Earlier answer"},
            {"role": "user", "content": "How long is it?"},
        ],
    )
    text = c.choices[0].message.content or ""
    assert text.startswith("chars=")
    n = int(text[6:])
    assert 40 < n < 200  # the rendered history, not the question
    doc = "lorem ipsum " * 1000 + "\nQuestion: how long is this?"
    c2 = client.chat.completions.create(model="scripted-context", messages=[{"role": "user", "content": doc}])
    assert c2.choices[0].message.content == f"chars={len(doc)}"


# ---------------------------------------------------------------------------------------------------- runs


def test_runs_listing_detail_events_and_cancel(client: openai.OpenAI, srv: ServerProcess) -> None:
    result: dict[str, Any] = {}

    def call() -> None:
        result["r"] = post(srv, "/v1/chat/completions", chat_body("long one", "scripted-slow"))

    th = threading.Thread(target=call)
    th.start()
    run_id = None
    for _ in range(100):
        runs = httpx.get(srv.base + "/v1/runs?status=running").json()["data"]
        mine = [r for r in runs if r["model"] == "scripted-slow"]
        if mine:
            run_id = mine[0]["id"]
            break
        time.sleep(0.05)
    assert run_id
    seen: list[str] = []
    with httpx.stream("GET", srv.base + f"/v1/runs/{run_id}/events", timeout=30) as es:
        for ln in es.iter_lines():
            if ln.startswith("data: "):
                ev = json.loads(ln[6:])
                seen.append(ev["event"])
                if ev["event"] == "cell":
                    t_cancel = time.monotonic()
                    r = httpx.post(srv.base + f"/v1/runs/{run_id}/cancel")
                    assert r.status_code == 200 and r.json()["cancel_requested"]
            if ln.startswith("event: end"):
                break
    th.join(30)
    elapsed = time.monotonic() - t_cancel
    assert elapsed < 1.5, elapsed
    assert seen[0] == "status" and "run_start" in seen and "cell" in seen
    r = result["r"]
    assert r.status_code == 200 and r.headers["x-outcore-run-id"] == run_id
    body = r.json()
    assert body["outcore"]["finish_reason"] == "cancelled" and body["choices"][0]["finish_reason"] == "length"
    d = httpx.get(srv.base + f"/v1/runs/{run_id}").json()
    assert d["status"] == "cancelled" and d["finish_reason"] == "cancelled"
    assert d["events"][0]["event"] == "run_start" and d["usage"]["total_tokens"] > 0
    assert_envelope(httpx.get(srv.base + "/v1/runs/run-doesnotexist"), 404, "not_found_error")


def test_client_disconnect_cancels_the_run(client: openai.OpenAI, srv: ServerProcess) -> None:
    def newest_run() -> dict[str, Any]:
        return httpx.get(srv.base + "/v1/runs?limit=1").json()["data"][0]

    for stream in (False, True):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                srv.base + "/v1/chat/completions",
                json=chat_body("slow", "scripted-slow", stream=stream),
                timeout=httpx.Timeout(1.5, connect=5),
            ) if not stream else _read_then_drop(srv)
        t_gone = time.monotonic()
        run = newest_run()
        while run["status"] in ("queued", "running") and time.monotonic() - t_gone < 5:
            time.sleep(0.05)
            run = newest_run()
        assert run["status"] == "cancelled" and run["finish_reason"] == "cancelled", run
        assert time.monotonic() - t_gone < 1.0 + 0.2, time.monotonic() - t_gone
    c = client.chat.completions.create(model="scripted-quick", messages=[{"role": "user", "content": "still up?"}])
    assert c.choices[0].message.content == "quick: noted"


def _read_then_drop(srv: ServerProcess) -> None:
    with httpx.stream(
        "POST",
        srv.base + "/v1/chat/completions",
        json=chat_body("slow", "scripted-slow", stream=True),
        timeout=httpx.Timeout(1.5, connect=5),
    ) as r:
        for ln in r.iter_lines():
            if ln.startswith(": outcore {"):
                raise httpx.ReadTimeout("dropping the stream mid-run")


def test_session_reuses_a_variable_over_three_requests(client: openai.OpenAI, srv: ServerProcess) -> None:
    def ask(step: str) -> Any:
        return client.chat.completions.with_raw_response.create(
            model="scripted-session",
            messages=[{"role": "user", "content": f"STEP {step}"}],
            extra_body={"session_id": "s-test-1"},
        )

    a = ask("set")
    assert a.parse().choices[0].message.content == "stored"
    assert a.headers["x-outcore-session"] == "s-test-1"
    assert ask("add").parse().choices[0].message.content == "added"
    assert ask("get").parse().choices[0].message.content == "secret is 42"
    sessions = httpx.get(srv.base + "/v1/sessions").json()["data"]
    assert [s["requests"] for s in sessions if s["id"] == "s-test-1"] == [3]
    # a fresh session does not see it
    other = client.chat.completions.create(
        model="scripted-session", messages=[{"role": "user", "content": "STEP get"}], extra_body={"session_id": "s-2"}
    )
    assert other.choices[0].message.content != "secret is 42"
    assert httpx.delete(srv.base + "/v1/sessions/s-test-1").status_code == 200


def test_a_busy_session_answers_409(client: openai.OpenAI, srv: ServerProcess) -> None:
    out: dict[str, Any] = {}
    body = chat_body("long", "scripted-slow", session_id="busy-1")
    th = threading.Thread(target=lambda: out.update(r=post(srv, "/v1/chat/completions", body)))
    th.start()
    t0 = time.monotonic()
    while not [x for x in httpx.get(srv.base + "/v1/sessions").json()["data"] if x["id"] == "busy-1" and x["busy"]]:
        assert time.monotonic() - t0 < 10
        time.sleep(0.05)
    err = assert_envelope(post(srv, "/v1/chat/completions", body), 409)
    assert err["code"] == "session_busy" and err["param"] == "session_id"
    assert_envelope(post(srv, "/v1/chat/completions", chat_body("x", "scripted-quick", session_id="busy-1")), 400)
    httpx.post(srv.base + f"/v1/runs/{out.get('run') or _newest(srv)}/cancel")
    th.join(30)
    assert out["r"].status_code == 200


def _newest(srv: ServerProcess) -> str:
    return str(httpx.get(srv.base + "/v1/runs?limit=1").json()["data"][0]["id"])


def test_metrics(client: openai.OpenAI, srv: ServerProcess) -> None:
    client.chat.completions.create(model="scripted-quick", messages=[{"role": "user", "content": "Say OK."}])
    text = httpx.get(srv.base + "/metrics").text
    for name in (
        'outcore_requests_total{route="/v1/chat/completions",status="200"}',
        'outcore_requests_total{route="/v1/chat/completions",status="400"}',
        "outcore_requests_running 0.0",
        "outcore_requests_queued 0.0",
        'outcore_tokens_total{kind="prompt",model="scripted-quick",role="root"}',
        'outcore_tokens_total{kind="completion",model="scripted-quick",role="worker"}',
        'outcore_cached_prompt_tokens_total{model="scripted-quick",role="root"}',
        'outcore_sub_calls_total{model="scripted-quick"}',
        'outcore_run_latency_seconds_bucket{le="1.0",model="scripted-quick"}',
        'outcore_runs_total{finish_reason="final",model="scripted-quick"}',
    ):
        assert name in text, name


# ---------------------------------------------------------------------------------------------------- other servers


def test_auth(tmp_path: Path) -> None:
    p = start_scripted(tmp_path / "auth.log", "--api-key", "k-123", "--api-key", "k-456")
    try:
        p.wait_ready(60)
        assert httpx.get(p.base + "/health").status_code == 200  # public
        assert_envelope(httpx.get(p.base + "/v1/models"), 401, "authentication_error")
        assert_envelope(httpx.get(p.base + "/v1/models", headers={"Authorization": "Bearer wrong"}), 401)
        assert_envelope(httpx.get(p.base + "/metrics"), 401)
        assert_envelope(httpx.get(p.base + "/ui"), 401)
        assert httpx.get(p.base + "/v1/models", headers={"Authorization": "Bearer k-123"}).status_code == 200
        assert httpx.get(p.base + "/v1/models", headers={"X-Api-Key": "k-456"}).status_code == 200
        # the page takes the key in its URL once and swaps it for a short-lived cookie (issue 18, item 9)
        r = httpx.get(p.base + "/ui?api_key=k-123&run=run-1")
        assert r.status_code == 303 and r.headers["location"] == "/ui?run=run-1"
        assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
        with httpx.Client(base_url=p.base) as browser:
            assert browser.get("/ui?api_key=k-123", follow_redirects=True).status_code == 200
            assert browser.get("/v1/runs").status_code == 200  # the page's own calls carry the cookie
        assert_envelope(httpx.get(p.base + "/ui?api_key=wrong"), 401)
        for path in ("/v1/models", "/v1/runs", "/metrics", "/v1/files"):  # a key in the URL is refused elsewhere
            err = assert_envelope(httpx.get(p.base + path + "?api_key=k-123"), 401, "authentication_error")
            assert "only by /ui" in err["message"]
        assert_envelope(httpx.get(p.base + "/v1/runs", cookies={"outcore_ui": "forged"}), 401)
        # 401 comes before the body is read: a huge unauthorised body is refused as 401, not 413
        assert_envelope(httpx.post(p.base + "/v1/chat/completions", content=b"x" * 70_000_000), 401)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=p.base + "/v1", api_key="wrong", max_retries=0).models.list()
        ok = openai.OpenAI(base_url=p.base + "/v1", api_key="k-123", max_retries=0)
        assert (
            ok.chat.completions.create(model="scripted-quick", messages=[{"role": "user", "content": "hi"}])
            .choices[0]
            .message.content
            == "quick: noted"
        )
    finally:
        p.stop()


def test_queue_full_retention_and_session_expiry(tmp_path: Path) -> None:
    p = start_scripted(
        tmp_path / "tight.log",
        "--delay",
        "0.3",
        "--set",
        "max_running=1",
        "--set",
        "max_queue=1",
        "--set",
        "retry_after_s=3",
        "--set",
        "run_retention=3",
        "--set",
        "session_idle_s=1.0",
    )
    try:
        p.wait_ready(60)
        results: list[httpx.Response] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(post(p, "/v1/chat/completions", chat_body("x", "scripted-slow")))
            )
            for _ in range(2)
        ]
        threads[0].start()
        _await_metrics(p, "outcore_requests_running 1.0")
        threads[1].start()
        m = _await_metrics(p, "outcore_requests_running 1.0", "outcore_requests_queued 1.0")
        assert "outcore_requests_running 1.0" in m and "outcore_requests_queued 1.0" in m
        r = post(p, "/v1/chat/completions", chat_body("x", "scripted-quick"))
        err = assert_envelope(r, 429, "rate_limit_error")
        assert r.headers["retry-after"] == "3" and err["code"] == "queue_full"
        with pytest.raises(openai.RateLimitError):
            openai.OpenAI(base_url=p.base + "/v1", api_key="x", max_retries=0).chat.completions.create(
                model="scripted-quick", messages=[{"role": "user", "content": "x"}]
            )
        for th in threads:
            th.join(60)
        assert [x.status_code for x in results] == [200, 200]
        # retention: only the newest 3 finished runs stay
        for i in range(3):
            assert post(p, "/v1/chat/completions", chat_body(f"q{i}")).status_code == 200
        runs = httpx.get(p.base + "/v1/runs").json()["data"]
        assert len(runs) == 3 and all(r["model"] == "scripted-quick" for r in runs)
        # sessions: idle ones expire
        post(p, "/v1/chat/completions", chat_body("STEP set", "scripted-session", session_id="exp-1"))
        assert [s["id"] for s in httpx.get(p.base + "/v1/sessions").json()["data"]] == ["exp-1"]
        t0 = time.monotonic()
        while httpx.get(p.base + "/v1/sessions").json()["data"] and time.monotonic() - t0 < 8:
            time.sleep(0.2)
        assert httpx.get(p.base + "/v1/sessions").json()["data"] == []
    finally:
        p.stop()


def _await_metrics(p: Any, *lines: str, timeout_s: float = 60.0) -> str:
    """The /metrics text once it holds every line: wait for the server's own state, not for a guessed time."""
    deadline = time.monotonic() + timeout_s
    while True:
        m = httpx.get(p.base + "/metrics").text
        if all(line in m for line in lines) or time.monotonic() > deadline:
            return m
        time.sleep(0.02)


def test_graceful_shutdown_cancels_in_flight_runs(tmp_path: Path) -> None:
    p = start_scripted(tmp_path / "shutdown.log", "--delay", "0.5")
    p.wait_ready(60)
    out: dict[str, Any] = {}

    def call() -> None:
        try:
            out["r"] = post(p, "/v1/chat/completions", chat_body("x", "scripted-slow"))
        except httpx.HTTPError as e:
            out["e"] = e

    th = threading.Thread(target=call)
    th.start()
    _await_metrics(p, "outcore_requests_running 1.0")  # the run is in flight
    t0 = time.monotonic()
    p.proc.send_signal(signal.SIGTERM)
    rc = p.proc.wait(15)
    th.join(10)
    assert rc == 0, p.log_tail()
    assert time.monotonic() - t0 < 6
    assert "r" in out, out
    assert out["r"].status_code == 200 and out["r"].json()["outcore"]["finish_reason"] == "cancelled"
    p.stop()
