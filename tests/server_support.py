"""Helpers for the ``outcore serve`` tests: start a live server process on 127.0.0.1 and wait until it is ready.

Two kinds of server process:

* the real CLI, ``outcore serve --config FILE`` (real GGUF models);
* ``python -m tests.server_support --port N``: the same app and uvicorn server with an injected registry of
  RLMs whose *roots* are scripted (deterministic turns for sessions, cancellation and the live page) while the
  sandbox is the real one. Worker replies are scripted too, with a per-call delay so a run takes long enough to
  watch and to cancel.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
OUTCORE = REPO / ".venv" / "bin" / "outcore"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_cpp_server(model: Path, log_path: Path, n_ctx: int = 2048, timeout: float = 90.0) -> Iterator[str]:
    """A real ``llama_cpp.server`` on 127.0.0.1 (2 threads), ready to serve: yields its ``http://host:port``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # run as outcore loads its models: llama.cpp's AMX matmul crashes on some CPUs (safe_weight_buffers says why)
    launch = (
        "import runpy, sys; from engine.backends.llama.model import safe_weight_buffers; sys.argv[0] = 'llama_cpp.server'\n"
        "with safe_weight_buffers(): runpy.run_module('llama_cpp.server', run_name='__main__')"
    )
    argv = [sys.executable, "-c", launch, "--model", str(model), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "2", "--verbose", "False"]
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not start in {timeout:.0f} s")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


class ServerProcess:
    """A server subprocess; ``stop()`` sends SIGTERM and waits (kills after ``grace`` seconds)."""

    def __init__(self, argv: Sequence[str], port: int, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "OUTCORE_LOG_LEVEL": "info", **(env or {})}
        self.proc = subprocess.Popen(list(argv), cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, env=full_env)

    def wait_ready(self, timeout: float = 180.0, key: str | None = None) -> float:
        """Seconds until /health said 200; raises with the log tail if the process died or timed out."""
        t0 = time.monotonic()
        saw_503 = False
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                r = httpx.get(self.base + "/health", timeout=2)
                if r.status_code == 200:
                    return time.monotonic() - t0
                saw_503 = saw_503 or r.status_code == 503
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout} s (saw 503: {saw_503}):\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")

    def log_lines(self) -> list[str]:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def stop(self, grace: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return int(self.proc.returncode)


def start_cli(config: Path, log_path: Path, *extra: str, port: int | None = None) -> ServerProcess:
    port = port or free_port()
    argv = [str(OUTCORE), "--log-level", "info", "serve", "--port", str(port), "--config", str(config), *extra]
    return ServerProcess(argv, port, log_path)


def start_scripted(log_path: Path, *extra: str, port: int | None = None) -> ServerProcess:
    port = port or free_port()
    argv = [sys.executable, "-m", "tests.server_support", "--port", str(port), *extra]
    return ServerProcess(argv, port, log_path)


# ---------------------------------------------------------------------------------------------------------------
# The scripted server (runs in the subprocess)


def _question(messages: Sequence[Any]) -> str:
    return "\n".join(m.content for m in messages if m.role == "user")


def _turns(messages: Sequence[Any]) -> int:
    return sum(1 for m in messages if m.role == "assistant")


def session_root(messages: Sequence[Any]) -> str:
    """Each request of a session names a step; the code keeps state in the REPL between requests."""
    steps = re.findall(r"STEP (\w+)", messages[-1].content)
    step = steps[-1] if steps else ""  # the newest request's step (earlier ones may be quoted before it)
    if step == "set":
        return "```python\nsecret = 41\nFINAL('stored')\n```"
    if step == "add":
        return "```python\nsecret = secret + 1\nFINAL('added')\n```"
    if step == "get":
        return "```python\nFINAL('secret is ' + str(secret))\n```"
    return "```python\nFINAL('unknown step')\n```"


def slow_root(messages: Sequence[Any]) -> str:
    """Six turns, each a cell with two worker calls, then FINAL: a run that takes a few seconds."""
    turn = _turns(messages)
    if turn >= 6:
        return "```python\nFINAL('done after ' + str(len(notes)) + ' notes')\n```"
    first = "notes = []\n" if turn == 0 else ""
    return (
        "```python\n"
        f"{first}part = context[{turn * 10}:{turn * 10 + 40}]\n"
        f"notes.append(llm_query('Summarise part {turn}: ' + part))\n"
        f"notes.append(llm_query_batched(['Check A{turn}: ' + part, 'Check B{turn}: ' + part])[0])\n"
        f"print('turn {turn}', len(notes))\n"
        "```"
    )


def quick_root(messages: Sequence[Any]) -> str:
    """Answers from the context with one worker call (the openai-client tests)."""
    return "```python\nans = llm_query('Say OK. Text: ' + context[:200])\nFINAL('quick: ' + ans)\n```"


def context_root(messages: Sequence[Any]) -> str:
    """Reports the size of the context it was given (checks what the server passed as the prompt)."""
    return "```python\nFINAL('chars=' + str(len(context)))\n```"


def pool_root(messages: Sequence[Any]) -> str:
    """Four independent worker questions in one batch (sent concurrently by the openai backend)."""
    return (
        "```python\n"
        "qs = ['What is the capital of ' + c + '? Answer with the city name only.'"
        " for c in ['France', 'Italy', 'Japan', 'Egypt']]\n"
        "ans = llm_query_batched(qs, max_tokens=12)\n"
        "FINAL(' | '.join((a or '?').strip() for a in ans))\n"
        "```"
    )


def scripted_registry(delay_s: float, pool_url: str | None = None) -> Any:
    from engine.backends.scripted import ScriptedBackend
    from engine.rlm import RLM
    from server.registry import Registry, RLMModel

    def rlm(name: str, root_fn: Any, delay: float) -> RLMModel:
        root = ScriptedBackend(root_fn, name=f"scripted-root-{name}", delay_s=delay)
        worker = ScriptedBackend(root=(), worker="noted", name="scripted-worker", delay_s=delay)
        return RLMModel(name, RLM(root=root, worker=worker, trace=False, max_root_turns=10))

    models = {
        "scripted-session": rlm("scripted-session", session_root, 0.0),
        "scripted-slow": rlm("scripted-slow", slow_root, delay_s),
        "scripted-quick": rlm("scripted-quick", quick_root, 0.0),
        "scripted-context": rlm("scripted-context", context_root, 0.0),
    }
    backends: list[Any] = []
    if pool_url:
        from engine.backends import load_backend

        pool = load_backend(f"openai:{pool_url}", model="pool", n_ctx=2048, max_concurrency=8)
        backends.append(pool)
        root = ScriptedBackend(pool_root, name="scripted-root-pool")
        models["scripted-pool"] = RLMModel("scripted-pool", RLM(root=root, worker=pool, trace=False))
    return Registry(models, backends, created=int(time.time()))  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--delay", type=float, default=0.25, help="seconds per scripted model call (scripted-slow)")
    p.add_argument("--load-delay", type=float, default=0.0, help="seconds the registry takes to load")
    p.add_argument("--set", action="append", default=[], help="server setting KEY=VALUE (TOML value)")
    p.add_argument("--api-key", action="append", default=None)
    p.add_argument("--pool-url", default=None, help="an OpenAI-compatible worker pool for the scripted-pool model")
    a = p.parse_args(argv)
    import tomllib

    from server.config import Settings
    from server.main import serve

    srv: dict[str, Any] = {"port": a.port}
    for kv in a.set:
        k, v = kv.split("=", 1)
        srv[k] = tomllib.loads(f"v = {v}")["v"]
    if a.api_key:
        srv["api_keys"] = a.api_key
    settings = Settings.model_validate({"server": srv, "models": {}})

    def load() -> Any:
        time.sleep(a.load_delay)
        return scripted_registry(a.delay, a.pool_url)

    return serve(settings, load)


if __name__ == "__main__":
    sys.exit(main())
