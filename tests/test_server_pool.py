"""The scale-out path end to end: an RLM whose worker is an ``openai:`` pool.

A real ``llama_cpp.server`` (SmolLM2-135M on 127.0.0.1) stands in for a vLLM or SGLang pool on other machines. A
small counting proxy sits in front of it, so the test sees how many worker requests were in flight at once. The RLM
behind ``outcore serve`` batches four worker questions in one ``llm_query_batched``; they must arrive at the pool
concurrently and the answer must be right. ``outcore serve --config`` with ``worker = "openai:..."`` is checked too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.server_support import ServerProcess, free_port, llama_cpp_server, start_cli, start_scripted

pytestmark = pytest.mark.slow


class CountingProxy:
    """Forwards POST/GET to ``target``; counts chat requests and the most of them in flight at once."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.in_flight = 0
        self.max_in_flight = 0
        self.posts = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self, method: str) -> None:
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                chat = method == "POST" and self.path.endswith("/chat/completions")
                with proxy._lock:
                    proxy.in_flight += chat
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                    proxy.posts += chat
                try:
                    r = httpx.request(
                        method,
                        proxy.target + self.path,
                        content=body,
                        timeout=120,
                        headers={"content-type": self.headers.get("content-type", "application/json")},
                    )
                finally:
                    with proxy._lock:
                        proxy.in_flight -= chat
                self.send_response(r.status_code)
                self.send_header("content-type", r.headers.get("content-type", "application/json"))
                self.send_header("content-length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def do_POST(self) -> None:  # noqa: N802
                self._forward("POST")

            def do_GET(self) -> None:  # noqa: N802
                self._forward("GET")

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CountingProxy]:
    from models import resolve_model_path

    model = Path(resolve_model_path("smollm2-135m"))
    with llama_cpp_server(model, tmp_path_factory.mktemp("pool") / "llama_cpp_server.log") as base:
        proxy = CountingProxy(base)
        yield proxy
        proxy.close()


def test_rlm_with_an_openai_worker_pool(pool: CountingProxy, tmp_path: Path) -> None:
    p: ServerProcess = start_scripted(tmp_path / "server.log", "--pool-url", pool.url)
    try:
        p.wait_ready(60)
        client = openai.OpenAI(base_url=p.base + "/v1", api_key="none", max_retries=0, timeout=300)
        before = pool.posts
        c = client.chat.completions.create(
            model="scripted-pool", messages=[{"role": "user", "content": "Capitals of four countries, please."}]
        )
        answer = c.choices[0].message.content or ""
        parts = answer.split(" | ")
        assert len(parts) == 4, answer
        for part, city in zip(parts, ["Paris", "Rome", "Tokyo", "Cairo"], strict=True):
            assert city in part, answer
        assert c.model_extra["outcore"]["finish_reason"] == "final"  # type: ignore[index]
        assert c.model_extra["outcore"]["usage_by_role"]["worker"]["calls"] == 4  # type: ignore[index]
        assert pool.posts - before == 4
        assert pool.max_in_flight >= 2, pool.max_in_flight  # sent concurrently, not one after another
        card = httpx.get(p.base + "/v1/models/scripted-pool").json()
        assert card["outcore"]["worker_backend"] == "openai"
    finally:
        assert p.stop() == 0


def test_config_file_names_an_openai_worker_pool(pool: CountingProxy, tmp_path: Path) -> None:
    cfg = tmp_path / "outcore.toml"
    cfg.write_text(
        f"""
[models.rlm-pool]
kind = "rlm"
root = "smollm2-135m"
root_options = {{ n_ctx = 2048 }}
worker = "openai:{pool.url}"
worker_options = {{ model = "smollm2", n_ctx = 2048, max_concurrency = 16 }}
limits = {{ max_root_turns = 3 }}
"""
    )
    p = start_cli(cfg, tmp_path / "server.log")
    try:
        p.wait_ready(120)
        card = httpx.get(p.base + "/v1/models/rlm-pool").json()["outcore"]
        assert card["worker_backend"] == "openai" and card["worker"] == "smollm2"
        assert card["limits"] == {"max_root_turns": 3}
    finally:
        assert p.stop() == 0
