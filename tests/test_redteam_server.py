"""Red team: hostile and malformed input to ``outcore serve`` over real HTTP, with the tiny model (smollm2-135m).

One live server (the real CLI, ``--config``) serves ``tiny`` (smollm2-135m, plain) and ``tiny-rlm`` (smollm2-135m as
root and worker, one root turn) behind an API key. Every case asserts the exact refusal: a status in OpenAI's
envelope, never a traceback, a hang or a 500. The table in ``docs/security.md`` (``## Red team: server``) lists them.
"""

from __future__ import annotations

import errno
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server_support import OUTCORE, ServerProcess, free_port, start_cli

KEY = "rt-key"
H = {"Authorization": f"Bearer {KEY}"}
CONFIG = """
[server]
api_keys = ["rt-key"]
max_body_bytes = 100000
max_running = 2
max_queue = 4
keepalive_s = 1
data_dir = "{data}"
trace_dir = "{traces}"

[models.tiny]
kind = "plain"
model = "smollm2-135m"
options = {{ n_ctx = 2048, n_parallel = 2 }}

[models.tiny-rlm]
kind = "rlm"
root = "smollm2-135m"
worker = "smollm2-135m"
root_options = {{ n_ctx = 8192, max_sessions = 2 }}
worker_options = {{ n_ctx = 2048 }}
limits = {{ max_root_turns = 1, max_wall_s = 120, root_max_tokens = 64 }}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    d = tmp_path_factory.mktemp("redteam")
    cfg = d / "outcore.toml"
    cfg.write_text(CONFIG.format(data=d / "data", traces=d / "traces"))
    p = start_cli(cfg, d / "server.log")
    try:
        p.wait_ready(300)
        yield p
    finally:
        assert p.stop() == 0, p.log_tail()
        log = p.log_path.read_text(errors="replace")
        assert "Exception in ASGI application" not in log and "Traceback" not in log, log[-4000:]


def envelope(r: httpx.Response, status: int, type_: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert {"message", "type", "param", "code"} <= set(err) and err["message"], err
    if type_ is not None:
        assert err["type"] == type_, err
    return err


def chat(model: str = "tiny", content: str = "Say hi.", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 8, **extra}


# -------------------------------------------------------------------------------------------------------- auth

ROUTES = [
    ("GET", "/v1/models"),
    ("GET", "/v1/models/tiny"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("GET", "/v1/runs"),
    ("GET", "/v1/runs/run-x"),
    ("POST", "/v1/runs/run-x/cancel"),
    ("GET", "/v1/runs/run-x/events"),
    ("GET", "/v1/files"),
    ("POST", "/v1/contexts"),
    ("DELETE", "/v1/sessions/s1"),
    ("GET", "/metrics"),
    ("GET", "/ui"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_no_key_wrong_key_and_url_key_are_refused(srv: ServerProcess, method: str, path: str) -> None:
    envelope(httpx.request(method, srv.base + path), 401, "authentication_error")
    envelope(httpx.request(method, srv.base + path, headers={"Authorization": "Bearer nope"}), 401)
    if path != "/ui":  # a right key in the URL: accepted by the page only (issue 18, item 9)
        err = envelope(httpx.request(method, srv.base + path + f"?api_key={KEY}"), 401)
        assert "only by /ui" in err["message"]


def test_metrics_label_refused_requests_by_route_template(srv: ServerProcess) -> None:
    """After the 401s above: one label per route template, never the raw URL (an id, a traversal attempt)."""
    envelope(httpx.get(srv.base + "/v1/runs/run-../../x"), 401)
    text = httpx.get(srv.base + "/metrics", headers=H).text
    assert 'outcore_requests_total{route="/v1/runs/{run_id}",status="401"}' in text
    assert 'outcore_requests_total{route="/v1/models/{name:path}",status="401"}' in text
    assert "run-x" not in text and "../" not in text


def test_the_page_swaps_its_url_key_for_a_cookie(srv: ServerProcess) -> None:
    assert httpx.get(srv.base + "/health").status_code == 200  # public
    r = httpx.get(srv.base + f"/ui?api_key={KEY}")
    assert r.status_code == 303 and r.headers["location"] == "/ui" and "HttpOnly" in r.headers["set-cookie"]
    with httpx.Client(base_url=srv.base) as browser:
        page = browser.get(f"/ui?api_key={KEY}", follow_redirects=True)
        assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
        assert browser.get("/v1/runs").status_code == 200
    envelope(httpx.get(srv.base + "/v1/runs", cookies={"outcore_ui": "x" * 43}), 401)


# ------------------------------------------------------------------------------------------------ wrong types

WRONG_TYPES = [
    ("model", {"model": 7}),
    ("messages", {"messages": "hi"}),
    ("messages.0.content", {"messages": [{"role": "user", "content": 5}]}),
    ("messages.0.role", {"messages": [{"role": 1, "content": "x"}]}),
    ("temperature", {"temperature": "hot"}),
    ("top_p", {"top_p": [1]}),
    ("max_tokens", {"max_tokens": "ten"}),
    ("stream", {"stream": "yes"}),
    ("stop", {"stop": 5}),
    ("seed", {"seed": "x"}),
    ("n", {"n": "2"}),
    ("stream_options", {"stream": True, "stream_options": "x"}),
    ("limits", {"model": "tiny-rlm", "limits": "x"}),
    ("limits.max_root_turns", {"model": "tiny-rlm", "limits": {"max_root_turns": "many"}}),
    ("context_id", {"model": "tiny-rlm", "context_id": 5}),
    ("session_id", {"model": "tiny-rlm", "session_id": 5}),
]


@pytest.mark.parametrize(("field", "patch"), WRONG_TYPES, ids=[w[0] for w in WRONG_TYPES])
def test_every_field_with_the_wrong_type_is_a_400(srv: ServerProcess, field: str, patch: dict[str, Any]) -> None:
    r = httpx.post(srv.base + "/v1/chat/completions", json={**chat(), **patch}, headers=H, timeout=30)
    err = envelope(r, 400, "invalid_request_error")
    assert err["param"] is None or err["param"].split(".")[0] == field.split(".")[0], err


def test_completions_prompt_wrong_type(srv: ServerProcess) -> None:
    r = httpx.post(srv.base + "/v1/completions", json={"model": "tiny", "prompt": {"a": 1}}, headers=H, timeout=30)
    assert envelope(r, 400)["param"].startswith("prompt")


# ------------------------------------------------------------------------------------------- bodies and bytes


def post_raw(srv: ServerProcess, content: Any, **headers: str) -> httpx.Response:
    h = {**H, "Content-Type": "application/json", **headers}
    return httpx.post(srv.base + "/v1/chat/completions", content=content, headers=h, timeout=30)


def test_body_over_the_limit_with_content_length(srv: ServerProcess) -> None:
    envelope(post_raw(srv, json.dumps(chat("x" * 200_000))), 413, "request_too_large")


def test_body_over_the_limit_chunked(srv: ServerProcess) -> None:
    data = json.dumps(chat("x" * 200_000)).encode()
    envelope(post_raw(srv, (data[i : i + 8192] for i in range(0, len(data), 8192))), 413, "request_too_large")


def test_declared_length_over_the_limit_is_refused_before_reading(srv: ServerProcess) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer rt-key\r\n"
            b"Content-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{"
        )
        head = s.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413"), head


@pytest.mark.parametrize("depth", [5_000, 15_000])
def test_deeply_nested_json_is_a_400(srv: ServerProcess, depth: int) -> None:
    err = envelope(post_raw(srv, '{"a":' * depth + "1" + "}" * depth), 400, "invalid_request_error")
    assert "nested too deeply" in err["message"]


def test_deeply_nested_array_in_a_field_is_a_400(srv: ServerProcess) -> None:
    body = json.dumps(chat())[:-1] + ', "stop": ' + "[" * 5000 + "]" * 5000 + "}"
    envelope(post_raw(srv, body), 400)


def test_invalid_utf8_body(srv: ServerProcess) -> None:
    envelope(post_raw(srv, b'{"model": "tiny", "messages": [{"role": "user", "content": "\xff\xfe"}]}'), 400)


def test_raw_nul_byte_in_the_body(srv: ServerProcess) -> None:
    envelope(post_raw(srv, b'{"model": "tiny", "messages": [{"role": "user", "content": "a\x00b"}]}'), 400)


def test_escaped_nul_bytes_in_an_rlm_prompt_are_refused_as_binary(srv: ServerProcess) -> None:
    r = httpx.post(srv.base + "/v1/chat/completions", json=chat("tiny-rlm", "\u0000" * 64), headers=H, timeout=120)
    envelope(r, 400, "invalid_request_error")


def test_binary_context_upload(srv: ServerProcess) -> None:
    r = httpx.post(srv.base + "/v1/contexts", content=b"\x00\xff" * 100, headers=H, timeout=30)
    assert "not UTF-8" in envelope(r, 400)["message"]


# ----------------------------------------------------------------------------------------------- path traversal

TRAVERSALS = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "ctx-/../../x", "/etc/passwd", "ctx-" + "0" * 24 + "/.."]


@pytest.mark.parametrize("cid", TRAVERSALS)
def test_path_traversal_in_context_id(srv: ServerProcess, cid: str) -> None:
    r = httpx.post(srv.base + "/v1/chat/completions", json=chat("tiny-rlm", context_id=cid), headers=H, timeout=30)
    assert envelope(r, 404, "not_found_error")["param"] == "context_id"


@pytest.mark.parametrize("fid", ["..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "file-..", "..."])
def test_path_traversal_in_file_ids(srv: ServerProcess, fid: str) -> None:
    envelope(httpx.get(srv.base + f"/v1/files/{fid}", headers=H), 404, "not_found_error")
    envelope(httpx.delete(srv.base + f"/v1/files/{fid}", headers=H), 404, "not_found_error")
    envelope(httpx.get(srv.base + f"/v1/contexts/{fid}", headers=H), 404, "not_found_error")
    assert Path("/etc/passwd").exists()


def test_upload_filename_is_a_label_not_a_path(srv: ServerProcess) -> None:
    r = httpx.post(srv.base + "/v1/contexts?filename=../../../tmp/pwned.txt", content=b"hello", headers=H)
    assert r.status_code == 200 and r.json()["id"].startswith("ctx-")
    assert not Path("/tmp/pwned.txt").exists()


# ------------------------------------------------------------------------------------------- runs and streams


def _newest_run(srv: ServerProcess, question: str) -> dict[str, Any] | None:
    runs = httpx.get(srv.base + "/v1/runs", headers=H).json()["data"]
    return next((r for r in runs if r["question"] == question), None)


def _wait_run(srv: ServerProcess, question: str, statuses: tuple[str, ...], timeout: float = 120) -> dict[str, Any]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        run = _newest_run(srv, question)
        if run is not None and run["status"] in statuses:
            return run
        time.sleep(0.1)
    raise AssertionError(f"no run {question!r} reached {statuses}: {_newest_run(srv, question)}")


def test_concurrent_requests_on_one_session(srv: ServerProcess) -> None:
    q = "Session one: count the words in this sentence."
    out: dict[str, httpx.Response] = {}
    body = chat("tiny-rlm", q, session_id="rt-session", max_tokens=None)
    th = threading.Thread(
        target=lambda: out.setdefault(
            "r", httpx.post(srv.base + "/v1/chat/completions", json=body, headers=H, timeout=300)
        )
    )
    th.start()
    _wait_run(srv, q, ("running",))
    second = httpx.post(
        srv.base + "/v1/chat/completions",
        json={**body, "messages": [{"role": "user", "content": "again"}]},
        headers=H,
        timeout=60,
    )
    err = envelope(second, 409)
    assert "rt-session" in err["message"]
    th.join(300)
    assert out["r"].status_code == 200, out["r"].text


def test_early_disconnect_of_a_stream_cancels_the_run(srv: ServerProcess) -> None:
    q = "Stream then drop: list three colours."
    body = chat("tiny-rlm", q, stream=True, max_tokens=None)
    with httpx.stream("POST", srv.base + "/v1/chat/completions", json=body, headers=H, timeout=60) as r:
        assert r.status_code == 200
        next(r.iter_lines())  # the first chunk (role), then go away
    run = _wait_run(srv, q, ("cancelled", "done", "failed"), timeout=60)
    assert run["status"] == "cancelled", run


def test_html_in_questions_and_answers_is_data_for_the_page(srv: ServerProcess) -> None:
    q = "<script>alert(1)</script><img src=x onerror=alert(2)> Repeat this text exactly."
    r = httpx.post(srv.base + "/v1/chat/completions", json=chat("tiny-rlm", q, max_tokens=None), headers=H, timeout=300)
    assert r.status_code == 200, r.text
    run = _wait_run(srv, q, ("done", "cancelled", "failed"))
    assert run["question"] == q  # stored as given; JSON is the only encoding
    js = httpx.get(srv.base + "/ui/static/app.js").text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js, sink  # the page writes text nodes only
    csp = httpx.get(srv.base + "/ui", headers=H).headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp


# -------------------------------------------------------------------------------------- configs that cannot run


def run_cli(tmp_path: Path, toml: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "outcore.toml"
    cfg.write_text(toml)
    argv = [str(OUTCORE), "serve", "--port", str(free_port()), "--config", str(cfg)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


BAD_CONFIGS = [
    ("typo", '[models.m]\nkind = "plain"\nmodle = "smollm2-135m"\n', "models.m.modle", 15),
    ("missing model", '[models.m]\nkind = "plain"\nmodel = "no-such-model-xyz"\n', "no-such-model-xyz", 60),
    (
        "unreachable worker",
        '[models.m]\nkind = "rlm"\nroot = "smollm2-135m"\nworker = "openai:http://127.0.0.1:1/v1"\n',
        "http://127.0.0.1:1/v1",
        60,
    ),
    ("trace dir is a file", '[server]\ntrace_dir = "/etc/passwd"\n', "server.trace_dir", 60),
    ("read-only trace dir", '[server]\ntrace_dir = "/proc/outcore-traces"\n', "server.trace_dir", 60),
]


@pytest.mark.parametrize(("name", "toml", "message", "budget_s"), BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_a_config_that_cannot_run_fails_fast_with_one_line(
    tmp_path: Path, name: str, toml: str, message: str, budget_s: float
) -> None:
    if "trace_dir" in toml:
        toml += '[models.m]\nkind = "plain"\nmodel = "smollm2-135m"\n'
    t0 = time.monotonic()
    r = run_cli(tmp_path, toml)
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("outcore: error: ") and message in last, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert time.monotonic() - t0 < budget_s


def test_a_missing_trace_dir_is_created(srv: ServerProcess) -> None:
    traces = Path(srv.log_path).parent / "traces"
    assert traces.is_dir()  # the module's server was given a directory that did not exist


# --------------------------------------------------------------------------------------------- a full disk


def test_a_full_disk_for_uploads_is_a_clear_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC injected at the write, in an in-process server over a real socket."""
    import uvicorn

    import server.contexts
    from server.app import create_app
    from server.config import Settings
    from server.registry import Registry

    class FullDisk:
        def __init__(self, *a: Any, **k: Any) -> None:
            pass

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *a: Any) -> None:
            pass

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(server.contexts, "open", FullDisk, raising=False)
    port = free_port()
    settings = Settings.model_validate({"server": {"port": port, "data_dir": str(tmp_path)}, "models": {}})
    app = create_app(settings, lambda: Registry({}, [], created=0))
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    th = threading.Thread(target=uv.run, daemon=True)
    th.start()
    try:
        t0 = time.monotonic()
        while not uv.started:
            assert time.monotonic() - t0 < 30
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        while httpx.get(base + "/health").status_code != 200:
            assert time.monotonic() - t0 < 30
            time.sleep(0.05)
        err = envelope(httpx.post(base + "/v1/contexts", content=b"some text"), 503, "unavailable_error")
        assert "No space left on device" in err["message"] and err["code"] == "storage_error"
        files = {"file": ("a.txt", b"some text")}
        envelope(httpx.post(base + "/v1/files", files=files, data={"purpose": "assistants"}), 503)
        assert list(tmp_path.iterdir()) == []  # nothing half-written is left behind
    finally:
        uv.should_exit = True
        th.join(30)
