"""``ref-rlm``: the reference RLM implementation (PyPI ``rlms``, the paper authors' library) as a benchmark method.

Why through ``outcore serve``: the reference library reaches local models only through an OpenAI-compatible
server. The method starts ``outcore serve`` once per benchmark run on 127.0.0.1 (a free port), serving the run's
root and worker GGUF files as two *plain* models (``root``, ``worker``; one loaded model when they are the same
file and options), so ``ref-rlm`` reads the same models, instances and limits as ``rlm``. It also exercises the
server with a client nobody here wrote.

Why a child process per instance: the reference library's default REPL executes model-written code in its own
process with no per-cell timeout (a ``while True:`` hangs the run) and no isolation. The child is killed when the
instance's wall-clock limit (plus a grace) is spent, and the run goes on.

The limits map one to one: ``max_root_turns`` -> ``max_iterations``, ``max_wall_s`` -> ``max_timeout``,
``root_max_tokens`` / ``sub_max_tokens`` -> ``max_tokens`` of the root and sub-call sampling (the engine's defaults,
384 and 256, when the profile sets none, so both methods decode under the same reply limits); greedy decoding.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from bench.tasks import Family, Instance
from engine.errors import UserError
from engine.guardrails import Limits

REF_VERSION = "0.1.3"  # the pinned `rlms` of pyproject's [ref] extra
INSTALL = "pip install -e '.[ref]'"
_GRACE_S = 60.0  # beyond the instance's limit: the library checks its timeout only between iterations
_READY_S = 300.0
DEFAULTS = Limits.model_validate(
    {}
)  # the engine's own reply lengths, when the profile sets none: the same limits as `rlm`


def check_installed() -> None:
    """A clear error when the reference library is missing or not the pinned version."""
    try:
        have = metadata.version("rlms")
    except metadata.PackageNotFoundError:
        raise UserError(f"ref-rlm needs the reference implementation (PyPI rlms=={REF_VERSION}): {INSTALL}") from None
    if have != REF_VERSION:
        raise UserError(f"ref-rlm is pinned to rlms=={REF_VERSION}, found {have}: {INSTALL}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return json.dumps(str(v))


def server_config(root: str, worker: str, root_options: dict[str, Any], worker_options: dict[str, Any]) -> str:
    """The TOML config of the served plain models ``root`` and ``worker``."""
    lines = ["[server]", "max_running = 4", "max_queue = 64", ""]
    for name, spec, opts in (("root", root, root_options), ("worker", worker, worker_options)):
        table = ", ".join(f"{k} = {_toml_value(v)}" for k, v in opts.items() if v is not None)
        lines += [f"[models.{name}]", 'kind = "plain"', f"model = {json.dumps(spec)}", f"options = {{ {table} }}", ""]
    return "\n".join(lines)


class RefServer:
    """``outcore serve`` in a child process, serving the run's models as plain models; ``base_url`` when ready."""

    def __init__(self, config_text: str, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "ref-rlm-serve.toml"
        self.config.write_text(config_text, encoding="utf-8")
        self.log_path = workdir / "ref-rlm-serve.log"
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        outcore = Path(sys.executable).with_name("outcore")
        argv = [str(outcore), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--config", str(self.config)]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = _READY_S) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"outcore serve exited ({self.proc.returncode}): {self._tail()}")
            try:
                if httpx.get(self.base_url.removesuffix("/v1") + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"outcore serve was not ready after {timeout:.0f} s: {self._tail()}")

    def _tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-1500:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


class RefRLMMethod:
    """The reference library's ``RLM(...).completion(context, root_prompt=question)`` over the served models."""

    name = "ref-rlm"

    def __init__(self, models: Any, trace_dir: Path | None, limits: dict[str, Any]) -> None:
        check_installed()
        self.models = models
        self.trace_dir = trace_dir
        self.limits = limits
        self._server: RefServer | None = None

    def _url(self) -> str:
        if self._server is None:
            m = self.models
            cfg = server_config(m.root_spec, m.worker_spec, m.root_options, m.worker_options)
            work = self.trace_dir or Path(tempfile.mkdtemp(prefix="outcore-ref-rlm-"))
            self._server = RefServer(cfg, work)
            self._server.wait_ready()
        return self._server.base_url

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def run(self, instance: Instance, family: Family, deadline_s: float) -> Any:
        from bench.methods import Outcome

        job = {
            "base_url": self._url(),
            "context": instance.documents if instance.documents else instance.context,
            "question": instance.question,
            "max_iterations": int(self.limits.get("max_root_turns", 30)),
            "max_timeout": float(deadline_s),
            "root_max_tokens": self.limits.get("root_max_tokens", DEFAULTS.root_max_tokens),
            "sub_max_tokens": self.limits.get("sub_max_tokens", DEFAULTS.sub_max_tokens),
            "log_dir": str(self.trace_dir) if self.trace_dir is not None else None,
        }
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bench.ref_rlm"],
                input=json.dumps(job),
                capture_output=True,
                text=True,
                timeout=deadline_s + _GRACE_S,
                env={**os.environ, "OPENAI_API_KEY": "local"},
            )
        except subprocess.TimeoutExpired:
            return Outcome("", "max_wall_s", error=f"ref-rlm killed after {deadline_s + _GRACE_S:.0f} s")
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            return Outcome("", "error", error=f"ref-rlm child exited {done.returncode}: {done.stderr[-800:]}")
        res = json.loads(lines[-1])
        usage = res.get("usage", {})
        return Outcome(
            answer=res.get("answer") or "",
            finish_reason=res.get("finish_reason", "final"),
            usage=usage,
            sub_calls=int(usage.get("worker", {}).get("calls", 0)),
            depth=1 if usage.get("worker", {}).get("calls") else 0,
            root_turns=int(usage.get("root", {}).get("calls", 0)),
            trace_path=res.get("trace_path"),
            error=res.get("error"),
        )


def _usage(summary: Any) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for model, u in summary.model_usage_summaries.items():
        out[model] = {
            "calls": u.total_calls,
            "prompt_tokens": u.total_input_tokens,
            "completion_tokens": u.total_output_tokens,
            "cached_tokens": 0,
        }
    return out


def child(job: dict[str, Any]) -> dict[str, Any]:
    """One completion of the reference library (run in a child process; see the module docstring)."""
    import rlm
    from rlm.logger import RLMLogger

    def client(model: str, max_tokens: int | None) -> dict[str, Any]:
        sampling: dict[str, Any] = {"temperature": 0.0}
        if max_tokens:
            sampling["max_tokens"] = int(max_tokens)
        return {"base_url": job["base_url"], "api_key": "local", "model_name": model, "sampling_args": sampling}

    logger = RLMLogger(log_dir=job.get("log_dir"), file_name="ref-rlm")  # log_dir None: in memory only
    ref = rlm.RLM(
        backend="openai",
        backend_kwargs=client("root", job.get("root_max_tokens")),
        other_backends=["openai"],
        other_backend_kwargs=[client("worker", job.get("sub_max_tokens"))],
        environment="local",
        max_depth=1,
        max_iterations=job["max_iterations"],
        max_timeout=job["max_timeout"],
        logger=logger,
    )
    trace = logger.log_file_path
    try:
        c = ref.completion(job["context"], root_prompt=job["question"])
    except (rlm.TimeoutExceededError, rlm.TokenLimitExceededError, rlm.ErrorThresholdExceededError) as e:
        reason = {"TimeoutExceededError": "max_wall_s"}.get(type(e).__name__, "limit")
        return {"answer": getattr(e, "partial_answer", None) or "", "finish_reason": reason, "trace_path": trace,
                "error": None}  # fmt: skip
    except Exception as e:  # the library or the server failed: the row records the exact error
        return {"answer": "", "finish_reason": "error", "trace_path": trace, "error": f"{type(e).__name__}: {e}"}
    iterations = (c.metadata or {}).get("iterations", [])
    # out of iterations, the library asks the root for one last answer (logged as one more iteration): the
    # engine's "max_root_turns"
    finished = 0 < len(iterations) <= job["max_iterations"] and iterations[-1].get("final_answer") is not None
    reason = "final" if finished else "max_root_turns"
    return {"answer": str(c.response), "finish_reason": reason, "usage": _usage(c.usage_summary), "trace_path": trace}


def main() -> int:
    job = json.loads(sys.stdin.read())
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # the library and model code print; only the result line goes to stdout
    try:
        res = child(job)
    finally:
        sys.stdout = real_stdout
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
