"""A client nobody here wrote: simonw's ``llm`` CLI, configured with ``extra-openai-models.yaml``, against a live
``outcore serve`` over real HTTP (a plain model and an RLM model, both smollm2-135m).

``llm`` reads its configuration from ``LLM_USER_PATH`` (a temporary directory here, so the user's own keys and
logs are never touched); it speaks the OpenAI chat API through the official SDK, streaming unless told not to.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server_support import REPO, ServerProcess, start_cli

LLM = REPO / ".venv" / "bin" / "llm"
CONFIG = """
[server]
max_running = 2

[models.tiny]
kind = "plain"
model = "smollm2-135m"
options = { n_ctx = 2048 }

[models.tiny-rlm]
kind = "rlm"
root = "smollm2-135m"
worker = "smollm2-135m"
root_options = { n_ctx = 8192 }
worker_options = { n_ctx = 2048 }
limits = { max_root_turns = 1, max_wall_s = 120, root_max_tokens = 64 }
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    d = tmp_path_factory.mktemp("llm-cli")
    (d / "outcore.toml").write_text(CONFIG)
    p = start_cli(d / "outcore.toml", d / "server.log")
    try:
        p.wait_ready(300)
        yield p
    finally:
        assert p.stop() == 0, p.log_tail()


def llm(srv: ServerProcess, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    home.mkdir(exist_ok=True)
    (home / "extra-openai-models.yaml").write_text(
        f"- model_id: outcore-tiny\n  model_name: tiny\n  api_base: {srv.base}/v1\n"
        f"- model_id: outcore-rlm\n  model_name: tiny-rlm\n  api_base: {srv.base}/v1\n"
    )
    env = {**os.environ, "LLM_USER_PATH": str(home), "OPENAI_API_KEY": "unused"}
    return subprocess.run([str(LLM), *args], capture_output=True, text=True, timeout=300, env=env)


def test_llm_cli_with_a_plain_model(srv: ServerProcess, tmp_path: Path) -> None:
    r = llm(srv, tmp_path / "llm", "-m", "outcore-tiny", "--no-log", "-o", "max_tokens", "12", "Say hello.")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), r.stderr  # streamed token by token by the plain model


def test_llm_cli_with_an_rlm_model(srv: ServerProcess, tmp_path: Path) -> None:
    question = "The notes say: the key is under the red pot. Where is the key?"
    r = llm(srv, tmp_path / "llm", "-m", "outcore-rlm", "--no-log", "--no-stream", question)
    assert r.returncode == 0, r.stderr
    runs = httpx.get(srv.base + "/v1/runs").json()["data"]
    run = next(x for x in runs if x["question"] == question or question in x["question"])
    assert run["status"] == "done", run  # the answer llm printed is that run's (possibly partial) answer
    detail = httpx.get(srv.base + f"/v1/runs/{run['id']}?events=false").json()
    assert r.stdout.strip() == (detail["answer"] or "").strip()
